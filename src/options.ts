import type { Struct } from 'superstruct';
import type { Transport } from './transport/transport.js';
import type { Durability } from './storage/schema.js';

/**
 * p-retry options for one batch (all durations in ms).
 * @example
 * retry: { retries: 10, minTimeout: 500, maxTimeout: 60_000, factor: 2, randomize: true }
 */
export interface RetryOptions {
  /** Retries of one batch within one flush. @default 5 */
  retries?: number;
  /** Delay before the first retry, in ms. @default 1000 */
  minTimeout?: number;
  /** Longest delay between two tries, in ms; also the cap of the backoff kept between flushes. @default 30000 */
  maxTimeout?: number;
  /** Exponential factor between delays. @default 2 */
  factor?: number;
  /** Multiply each delay by a random factor from 1 to 2 (jitter). @default true */
  randomize?: boolean;
  /** Longest time one batch is retried within one flush, in ms. @default Infinity */
  maxRetryTime?: number;
  /**
   * Longest `Retry-After` honoured, in ms. Waits up to `maxTimeout` happen inside the flush; longer
   * ones end it and are kept with the events, so a reload still honours them. @default 900000
   */
  maxRetryAfter?: number;
}

/**
 * Timers and the clock, injectable for tests.
 * @example
 * const clock: Clock = { now: () => now, setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as never) };
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Customer, member and organization used when track() input has none.
 * @example
 * defaults: { externalCustomerId: session.teamId, externalMemberId: session.userId }
 */
export interface TrackDefaults {
  externalCustomerId?: string;
  customerId?: string;
  organizationId?: string;
  memberId?: string;
  externalMemberId?: string;
}

/**
 * Options of `createEventBuffer()`, each checked when the buffer is created; durations in ms.
 * @example
 * createEventBuffer({ transport: httpTransport({ baseUrl: '/api/usage' }), batchSize: 50, defaults: { externalCustomerId: user.id } });
 */
export interface EventBufferOptions<Schemas extends Record<string, Struct<any, any>> = Record<string, Struct<any, any>>> {
  /** Required: where events go. `httpTransport(...)` or any object with `ingest()` (and `list()` for a mirror). */
  transport: Transport;
  /** The IndexedDB factory. @default globalThis.indexedDB */
  indexedDB?: IDBFactory;
  /** Database name; one database (and one queue) per name. @default "polar-event-buffer" */
  dbName?: string;
  /** Events per ingest request, 1 to 1000. @default 100 */
  batchSize?: number;
  /** ms between automatic flushes; 0 turns the timer off. @default 5000 */
  flushInterval?: number;
  /** Flush on the timer, when batchSize events wait, when the network comes back and when the page is hidden. @default true */
  autoFlush?: boolean;
  /** p-retry options for one batch (and one page of a mirror's reconcile). @default { retries: 5, minTimeout: 1000, maxTimeout: 30000, factor: 2, randomize: true } */
  retry?: RetryOptions;
  /** Most events waiting (pending + sending), across tabs; past it track() rejects with QueueFullError. @default 10000 */
  maxQueueSize?: number;
  /** Largest ingest body in bytes, at most 10 MiB (Polar's limit); keepalive sends stay under 60 KB. @default 60000 */
  maxBatchBytes?: number;
  /** ms a flush holds its batch (`sending`) and the lease of the flush lock where Web Locks are missing. @default 30000 */
  leaseDuration?: number;
  /** IndexedDB transaction durability; "strict": on disk before track() resolves. @default "strict" */
  durability?: Durability;
  /** `{ [eventName]: Struct }` that the metadata of that event must also pass. @default {} */
  schemas?: Schemas;
  /** Used when track() input has none. @default {} */
  defaults?: TrackDefaults;
  /** Ask the browser once to keep this origin's storage (`navigator.storage.persist()`); stats() reports the answer. @default false */
  persist?: boolean;
  /** Clock and timers. @default the global Date.now, setTimeout and clearTimeout */
  clock?: Clock;
}

export interface ResolvedOptions {
  transport: Transport;
  indexedDB: IDBFactory;
  dbName: string;
  batchSize: number;
  flushInterval: number;
  autoFlush: boolean;
  retry: Required<RetryOptions>;
  maxQueueSize: number;
  maxBatchBytes: number;
  leaseDuration: number;
  durability: Durability;
  schemas: Record<string, Struct<any, any>>;
  defaults: TrackDefaults;
  persist: boolean;
  clock: Clock;
}

/** The ingest body limit of Polar's API. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

// [min, max, default, integer?] per numeric option; Infinity as max also allows Infinity itself.
const NUMBERS: Record<string, [number, number, number, 1?]> = {
  batchSize: [1, 1000, 100, 1],
  flushInterval: [0, 2 ** 31 - 1, 5000],
  maxQueueSize: [1, Number.MAX_SAFE_INTEGER, 10_000, 1],
  maxBatchBytes: [1024, MAX_BODY_BYTES, 60_000, 1],
  leaseDuration: [1, 2 ** 31 - 1, 30_000],
  'retry.retries': [0, Infinity, 5, 1],
  'retry.minTimeout': [0, 2 ** 31 - 1, 1000],
  'retry.maxTimeout': [0, 2 ** 31 - 1, 30_000],
  'retry.factor': [1, 100, 2],
  'retry.maxRetryTime': [0, Infinity, Infinity],
  'retry.maxRetryAfter': [0, 2 ** 31 - 1, 900_000],
};
const OTHERS = ['transport', 'indexedDB', 'dbName', 'autoFlush', 'retry', 'durability', 'schemas', 'defaults', 'persist', 'clock'];
const RENAMED: Record<string, string> = {
  flushIntervalMs: 'flushInterval',
  maxBatchSize: 'batchSize',
  queueSize: 'maxQueueSize',
  leaseMs: 'leaseDuration',
  'retry.forever': 'retry.retries: Infinity',
  confirmGracePeriod: 'createMirror(buffer, { confirmGracePeriod })',
  retention: 'createMirror(buffer, { retention })',
  baseUrl: 'transport: httpTransport({ baseUrl })',
  fetch: 'transport: httpTransport({ fetch })',
};
const DEFAULT_KEYS = ['externalCustomerId', 'customerId', 'organizationId', 'memberId', 'externalMemberId'];

const shown = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v ? (Array.isArray(v) ? 'an array' : 'an object') : String(v);

/** A TypeError naming the option: "Expected `x` to be ..., got ...". */
export const optionError = (name: string, what: string, ...got: unknown[]): TypeError =>
  new TypeError(`Expected \`${name}\` to be ${what}${got.length ? `, got ${shown(got[0])}` : ''}`);

function keysOf(object: object, known: string[], prefix: string): void {
  for (const key of Object.keys(object)) {
    const name = prefix + key;
    if (RENAMED[name]) throw new TypeError(`Unknown option \`${name}\`: use \`${RENAMED[name]}\``);
    if (!known.includes(key)) throw new TypeError(`Unknown option \`${name}\``);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function number(options: Record<string, unknown>, name: string): number {
  const [min, max, fallback, int] = NUMBERS[name]!;
  const value = options[name.slice(name.indexOf('.') + 1)];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= max) || (int && value !== Infinity && !Number.isInteger(value))) {
    throw optionError(name, `${int ? 'an integer' : 'a number'} from ${min} to ${max}`, value);
  }
  return value;
}

/** Checks every option up front; a wrong one throws a TypeError that names it. */
export function resolveOptions(options: EventBufferOptions<any>): ResolvedOptions {
  if (!isObject(options)) throw optionError('options', 'an object with `transport`');
  const o = options as Record<string, unknown>;
  const top = Object.keys(NUMBERS).filter((k) => !k.includes('.'));
  keysOf(o, [...top, ...OTHERS], '');
  const { transport, defaults = {}, schemas = {}, retry = {}, clock = defaultClock() } = options;
  if (!isObject(transport) || typeof transport.ingest !== 'function')
    throw optionError('transport', 'an object with ingest(), such as httpTransport({ baseUrl })');
  if (transport.list !== undefined && typeof transport.list !== 'function') throw optionError('transport.list', 'a function');
  if (o.indexedDB !== undefined && typeof (o.indexedDB as IDBFactory | null)?.open !== 'function') throw optionError('indexedDB', 'an IDBFactory');
  const dbName = options.dbName ?? 'polar-event-buffer';
  if (typeof dbName !== 'string' || !dbName) throw optionError('dbName', 'a non-empty string', dbName);
  for (const key of ['autoFlush', 'persist'] as const) if (o[key] !== undefined && typeof o[key] !== 'boolean') throw optionError(key, 'a boolean', o[key]);
  const durability = options.durability ?? 'strict';
  if (durability !== 'strict' && durability !== 'relaxed') throw optionError('durability', '"strict" or "relaxed"', durability);
  if (!isObject(retry)) throw optionError('retry', 'an object of p-retry options', retry);
  keysOf(
    retry,
    [
      'randomize',
      ...Object.keys(NUMBERS)
        .filter((k) => k.startsWith('retry.'))
        .map((k) => k.slice(6)),
    ],
    'retry.',
  );
  if (retry.randomize !== undefined && typeof retry.randomize !== 'boolean') throw optionError('retry.randomize', 'a boolean', retry.randomize);
  const r = Object.fromEntries(
    Object.keys(NUMBERS)
      .filter((k) => k.startsWith('retry.'))
      .map((k) => [k.slice(6), number(retry, k)]),
  );
  if (r.maxTimeout! < r.minTimeout!) throw optionError('retry.maxTimeout', '≥ `retry.minTimeout`', r.maxTimeout);
  if (!isObject(schemas)) throw optionError('schemas', 'an object of superstruct structs', schemas);
  for (const [name, struct] of Object.entries(schemas)) {
    if (typeof (struct as Struct | null)?.validate !== 'function') throw optionError(`schemas.${name}`, 'a superstruct Struct', struct);
  }
  if (!isObject(defaults)) throw optionError('defaults', 'an object', defaults);
  keysOf(defaults, DEFAULT_KEYS, 'defaults.');
  for (const [key, value] of Object.entries(defaults)) {
    if (value !== undefined && (typeof value !== 'string' || !value)) throw optionError(`defaults.${key}`, 'a non-empty string', value);
  }
  for (const [a, b] of [
    ['externalCustomerId', 'customerId'],
    ['memberId', 'externalMemberId'],
  ] as const) {
    if (defaults[a] !== undefined && defaults[b] !== undefined) throw new TypeError(`Expected one of \`defaults.${a}\` and \`defaults.${b}\`, not both`);
  }
  if (!isObject(clock) || ['now', 'setTimeout', 'clearTimeout'].some((k) => typeof clock[k as keyof Clock] !== 'function')) {
    throw optionError('clock', 'an object with now(), setTimeout() and clearTimeout()');
  }
  return {
    transport,
    indexedDB: o.indexedDB as IDBFactory,
    dbName,
    batchSize: number(o, 'batchSize'),
    flushInterval: number(o, 'flushInterval'),
    autoFlush: options.autoFlush ?? true,
    retry: { ...(r as Required<Omit<RetryOptions, 'randomize'>>), randomize: retry.randomize ?? true },
    maxQueueSize: number(o, 'maxQueueSize'),
    maxBatchBytes: number(o, 'maxBatchBytes'),
    leaseDuration: number(o, 'leaseDuration'),
    durability,
    schemas: schemas as ResolvedOptions['schemas'],
    defaults,
    persist: options.persist ?? false,
    clock,
  };
}

/** The global clock, looked up when called, so fake timers apply; its timers never keep Node alive. */
export function defaultClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (callback, ms) => {
      const handle = setTimeout(callback, ms) as { unref?: () => void };
      handle.unref?.();
      return handle;
    },
    clearTimeout: (handle) => clearTimeout(handle as never),
  };
}
