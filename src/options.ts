import type { Struct } from 'superstruct';
import type { Transport } from './transport/transport.js';
import type { Durability } from './storage/schema.js';
import { argError, enumArg, isObject, numberArg, objectArg, oneOf, stringArg, type Range } from './check.js';

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

const MAX_MS = 2 ** 31 - 1;
const NUMBERS: Record<string, Range> = {
  batchSize: [1, 1000, 100, 1],
  flushInterval: [0, MAX_MS, 5000],
  maxQueueSize: [1, Number.MAX_SAFE_INTEGER, 10_000, 1],
  maxBatchBytes: [1024, MAX_BODY_BYTES, 60_000, 1],
  leaseDuration: [1, MAX_MS, 30_000],
};
const RETRY: Record<string, Range> = {
  retries: [0, Infinity, 5, 1],
  minTimeout: [0, MAX_MS, 1000],
  maxTimeout: [0, MAX_MS, 30_000],
  factor: [1, 100, 2],
  maxRetryTime: [0, Infinity, Infinity],
  maxRetryAfter: [0, MAX_MS, 900_000],
};
const KEYS = [...Object.keys(NUMBERS), 'transport', 'indexedDB', 'dbName', 'autoFlush', 'retry', 'durability', 'schemas', 'defaults', 'persist', 'clock'];
/** Options that belong to another call. */
const MOVED: Record<string, string> = {
  confirmGracePeriod: 'createMirror(buffer, { confirmGracePeriod })',
  retention: 'createMirror(buffer, { retention })',
  baseUrl: 'httpTransport({ baseUrl })',
  fetch: 'httpTransport({ fetch })',
};
const DEFAULT_KEYS = ['externalCustomerId', 'customerId', 'organizationId', 'memberId', 'externalMemberId'] as const;

const boolArg = (name: string, value: unknown, fallback: boolean): boolean => {
  if (value !== undefined && typeof value !== 'boolean') throw argError(name, 'a boolean', value);
  return (value as boolean | undefined) ?? fallback;
};

/** Checks every option up front; a wrong one throws a TypeError that names it. */
export function resolveOptions(options: EventBufferOptions<any>): ResolvedOptions {
  if (!isObject(options)) throw argError('options', 'an object with `transport`');
  const o = objectArg('options', options, KEYS, '', MOVED);
  const { transport, clock = defaultClock() } = options;
  if (!isObject(transport) || typeof transport.ingest !== 'function')
    throw argError('transport', 'an object with ingest(), such as httpTransport({ baseUrl })');
  if (transport.list !== undefined && typeof transport.list !== 'function') throw argError('transport.list', 'a function');
  if (o.indexedDB !== undefined && typeof (o.indexedDB as IDBFactory | null)?.open !== 'function') throw argError('indexedDB', 'an IDBFactory');
  const retry = objectArg('retry', o.retry, [...Object.keys(RETRY), 'randomize']);
  const r = Object.fromEntries(Object.entries(RETRY).map(([k, range]) => [k, numberArg(`retry.${k}`, retry[k], range)])) as unknown as Required<RetryOptions>;
  if (r.maxTimeout < r.minTimeout) throw argError('retry.maxTimeout', '≥ `retry.minTimeout`', r.maxTimeout);
  r.randomize = boolArg('retry.randomize', retry.randomize, true);
  const schemas = objectArg('schemas', o.schemas);
  for (const [name, struct] of Object.entries(schemas)) {
    if (typeof (struct as Struct | null)?.validate !== 'function') throw argError(`schemas.${name}`, 'a superstruct Struct', struct);
  }
  const defaults = objectArg('defaults', o.defaults, DEFAULT_KEYS);
  for (const key of DEFAULT_KEYS) stringArg(`defaults.${key}`, defaults[key]);
  oneOf(defaults, 'externalCustomerId', 'customerId', 'defaults.');
  oneOf(defaults, 'memberId', 'externalMemberId', 'defaults.');
  if (!isObject(clock) || ['now', 'setTimeout', 'clearTimeout'].some((k) => typeof clock[k as keyof Clock] !== 'function')) {
    throw argError('clock', 'an object with now(), setTimeout() and clearTimeout()');
  }
  const n = (name: string) => numberArg(name, o[name], NUMBERS[name]!);
  return {
    transport,
    indexedDB: o.indexedDB as IDBFactory,
    dbName: stringArg('dbName', o.dbName) ?? 'polar-event-buffer',
    batchSize: n('batchSize'),
    flushInterval: n('flushInterval'),
    autoFlush: boolArg('autoFlush', o.autoFlush, true),
    retry: r,
    maxQueueSize: n('maxQueueSize'),
    maxBatchBytes: n('maxBatchBytes'),
    leaseDuration: n('leaseDuration'),
    durability: o.durability === undefined ? 'strict' : enumArg('durability', o.durability, ['strict', 'relaxed'] as const),
    schemas: schemas as ResolvedOptions['schemas'],
    defaults: defaults as TrackDefaults,
    persist: boolArg('persist', o.persist, false),
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
