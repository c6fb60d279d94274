import type { Struct } from 'superstruct';
import type { Transport } from './transport/transport.js';
import type { Durability } from './storage/queue-store.js';
import { DEFAULT_DB_NAME } from './storage/schema.js';

/**
 * p-retry options for one batch (all durations in milliseconds).
 * @example
 * retry: { retries: 10, minTimeout: 500, maxTimeout: 60_000, factor: 2, randomize: true }
 */
export interface RetryOptions {
  /** Retries of one batch within one flush, after the first try. @default 5 */
  retries?: number;
  /** Delay before the first retry, in ms. @default 1000 */
  minTimeout?: number;
  /** Longest delay between two tries, in ms; also the cap of the backoff kept between flushes. @default 30000 */
  maxTimeout?: number;
  /** Exponential factor between delays. @default 2 */
  factor?: number;
  /** Multiply each delay by a random factor from 1 to 2 (jitter), so clients that failed together do not retry together. @default true */
  randomize?: boolean;
  /** Longest time one batch is retried within one flush, in ms. @default Infinity */
  maxRetryTime?: number;
  /**
   * Longest `Retry-After` honoured, in ms: a longer one is cut to this (a server asking for a year
   * does not stop the queue for a year). Waits up to `maxTimeout` happen inside the flush; longer
   * ones end the flush and are kept with the events (`nextAttemptAt`), so a reload still honours them.
   * @default 900000 (15 minutes)
   */
  maxRetryAfter?: number;
}

/**
 * Timers and the clock, injectable for tests (defaults: the global ones).
 * @example
 * // A manual clock for a test that drives time itself:
 * let now = 0;
 * const clock: Clock = { now: () => now, setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Options of `createEventBuffer()`. Every one is checked when the buffer is created; durations are in milliseconds.
 * @example
 * createEventBuffer({
 *   transport: httpTransport({ baseUrl: '/api/usage' }),
 *   batchSize: 50,
 *   flushInterval: 10_000,
 *   schemas: { api_call: object({ tokens: number() }) },
 *   defaults: { externalCustomerId: user.id },
 * });
 */
export interface EventBufferOptions<Schemas extends Record<string, Struct<any, any>> = Record<string, Struct<any, any>>> {
  /** Required: where events go. `httpTransport(...)` or any object with `ingest()` (and `list()` for a mirror's reconcile). */
  transport: Transport;
  /** The IndexedDB factory. @default globalThis.indexedDB */
  indexedDB?: IDBFactory;
  /** Database name; one database (and one queue) per name. @default "polar-event-buffer" */
  dbName?: string;
  /** Events per ingest request, 1 to 1000. @default 100 */
  batchSize?: number;
  /** Milliseconds between automatic flushes; 0 turns the timer off. @default 5000 */
  flushInterval?: number;
  /** Flush on the timer, when batchSize events are waiting, when the page goes back online and when it is hidden. @default true */
  autoFlush?: boolean;
  /**
   * p-retry options for one batch (and for one page of reconcile()).
   * @default { retries: 5, minTimeout: 1000, maxTimeout: 30000, factor: 2, randomize: true, maxRetryTime: Infinity, maxRetryAfter: 900000 }
   * @example retry: { retries: 10, maxTimeout: 60_000 }
   */
  retry?: RetryOptions;
  /**
   * Most events waiting (pending + sending); past it track() rejects with QueueFullError. Across
   * tabs the limit holds too; another tab's unused reserved slots (at most 1/8 of the room left,
   * for 2 s) may be refused early. @default 10000
   */
  maxQueueSize?: number;
  /** Upper bound of one ingest body, in bytes (keepalive sends stay under 64 KB whatever this says). @default 60000 */
  maxBatchBytes?: number;
  /** Milliseconds a flush holds its batch (`sending`) before a crashed holder's batch returns to waiting. @default 30000 */
  leaseDuration?: number;
  /** IndexedDB transaction durability. "strict": committed to disk before track() resolves. @default "strict" */
  durability?: Durability;
  /**
   * `{ [eventName]: Struct }`: the metadata of events with that name must also pass that struct.
   * @default {} (no event name has a schema: any Polar metadata)
   * @example schemas: { api_call: object({ tokens: number(), model: string() }) }
   */
  schemas?: Schemas;
  /**
   * Customer and organization used when track() input has none.
   * @default {}
   * @example defaults: { externalCustomerId: session.userId }
   */
  defaults?: { externalCustomerId?: string; customerId?: string; organizationId?: string };
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
  defaults: { externalCustomerId?: string; customerId?: string; organizationId?: string };
  clock: Clock;
}

/** Every option key, so validation cannot drift from the type. */
const OPTION_KEYS: Record<keyof EventBufferOptions, true> = {
  transport: true,
  indexedDB: true,
  dbName: true,
  batchSize: true,
  flushInterval: true,
  autoFlush: true,
  retry: true,
  maxQueueSize: true,
  maxBatchBytes: true,
  leaseDuration: true,
  durability: true,
  schemas: true,
  defaults: true,
  clock: true,
};
const RETRY_KEYS: Record<keyof RetryOptions, true> = {
  retries: true,
  minTimeout: true,
  maxTimeout: true,
  factor: true,
  randomize: true,
  maxRetryTime: true,
  maxRetryAfter: true,
};
const RENAMED: Record<string, string> = {
  flushIntervalMs: 'flushInterval',
  maxBatchSize: 'batchSize',
  queueSize: 'maxQueueSize',
  leaseMs: 'leaseDuration',
  db: 'dbName',
  name: 'dbName',
  fetch: 'transport (httpTransport({ baseUrl, fetch }))',
  baseUrl: 'transport (httpTransport({ baseUrl }))',
  retention: "createMirror(buffer, { retention }) from 'polar-event-buffer/mirror'",
  confirmGracePeriod: "createMirror(buffer, { confirmGracePeriod }) from 'polar-event-buffer/mirror'",
};

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

function integer(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new TypeError(`Expected \`${name}\` to be an integer ${range}, got ${describeValue(value)}.`);
  }
  return value;
}

function duration(name: string, value: unknown, min: number, fallback: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || (!allowInfinity && !Number.isFinite(value))) {
    throw new TypeError(
      `Expected \`${name}\` to be a number of milliseconds ≥ ${min}${allowInfinity ? ' (or Infinity)' : ''}, got ${describeValue(value)}.`,
    );
  }
  return value;
}

function isFactory(value: unknown): value is IDBFactory {
  return typeof value === 'object' && value !== null && typeof (value as IDBFactory).open === 'function';
}

/** Checks every option up front: a wrong one throws a TypeError that names it and says what was expected. */
export function resolveOptions(options: EventBufferOptions<any>): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('Expected createEventBuffer() options: an object with at least `transport`.');
  }
  for (const key of Object.keys(options)) {
    if (!(key in OPTION_KEYS)) {
      const renamed = RENAMED[key];
      throw new TypeError(
        renamed ? `Unknown option \`${key}\`: use \`${renamed}\` instead.` : `Unknown option \`${key}\`. Known options: ${Object.keys(OPTION_KEYS).join(', ')}.`,
      );
    }
  }
  const { transport } = options;
  if (typeof transport !== 'object' || transport === null || typeof transport.ingest !== 'function') {
    throw new TypeError('Expected `transport` to be an object with an ingest() method, such as httpTransport({ baseUrl }).');
  }
  if (transport.list !== undefined && typeof transport.list !== 'function') {
    throw new TypeError('Expected `transport.list` to be a function (or absent).');
  }
  let factory: IDBFactory | undefined;
  if (options.indexedDB !== undefined) {
    if (!isFactory(options.indexedDB)) throw new TypeError('Expected `indexedDB` to be an IDBFactory (an object with open()).');
    factory = options.indexedDB;
  }
  const dbName = options.dbName ?? DEFAULT_DB_NAME;
  if (typeof dbName !== 'string' || dbName.length === 0) {
    throw new TypeError(`Expected \`dbName\` to be a non-empty string, got ${describeValue(dbName)}.`);
  }
  if (options.autoFlush !== undefined && typeof options.autoFlush !== 'boolean') {
    throw new TypeError(`Expected \`autoFlush\` to be a boolean, got ${describeValue(options.autoFlush)}.`);
  }
  const durability = options.durability ?? 'strict';
  if (durability !== 'strict' && durability !== 'relaxed') {
    throw new TypeError(`Expected \`durability\` to be "strict" or "relaxed", got ${describeValue(durability)}.`);
  }
  const retryIn = options.retry ?? {};
  if (typeof retryIn !== 'object' || retryIn === null) throw new TypeError('Expected `retry` to be an object of p-retry options.');
  for (const key of Object.keys(retryIn)) {
    if (!(key in RETRY_KEYS)) {
      throw new TypeError(
        key === 'forever'
          ? 'Unknown option `retry.forever`: use `retry.retries: Infinity` instead.'
          : `Unknown option \`retry.${key}\`. Known: ${Object.keys(RETRY_KEYS).join(', ')}.`,
      );
    }
  }
  if (retryIn.randomize !== undefined && typeof retryIn.randomize !== 'boolean') {
    throw new TypeError('Expected `retry.randomize` to be a boolean.');
  }
  const retries = retryIn.retries === Infinity ? Infinity : integer('retry.retries', retryIn.retries, 0, Number.MAX_SAFE_INTEGER, 5);
  const minTimeout = duration('retry.minTimeout', retryIn.minTimeout, 0, 1000);
  const maxTimeout = duration('retry.maxTimeout', retryIn.maxTimeout, 0, Math.max(30_000, minTimeout));
  if (maxTimeout < minTimeout) throw new TypeError('Expected `retry.maxTimeout` to be ≥ `retry.minTimeout`.');
  const retry: Required<RetryOptions> = {
    retries,
    minTimeout,
    maxTimeout,
    factor: duration('retry.factor', retryIn.factor, 1, 2),
    randomize: retryIn.randomize ?? true,
    maxRetryTime: duration('retry.maxRetryTime', retryIn.maxRetryTime, 0, Infinity, true),
    maxRetryAfter: duration('retry.maxRetryAfter', retryIn.maxRetryAfter, 0, 900_000),
  };
  const schemas = options.schemas ?? {};
  if (typeof schemas !== 'object' || schemas === null || Array.isArray(schemas)) {
    throw new TypeError('Expected `schemas` to be an object of superstruct structs, one per event name.');
  }
  for (const [name, struct] of Object.entries(schemas)) {
    if (typeof struct !== 'object' || struct === null || typeof (struct as { validate?: unknown }).validate !== 'function') {
      throw new TypeError(`Expected \`schemas.${name}\` to be a superstruct Struct (e.g. object({ tokens: number() })).`);
    }
  }
  const defaults = options.defaults ?? {};
  if (typeof defaults !== 'object' || defaults === null) throw new TypeError('Expected `defaults` to be an object.');
  for (const [key, value] of Object.entries(defaults)) {
    if (!['externalCustomerId', 'customerId', 'organizationId'].includes(key)) {
      throw new TypeError(`Unknown option \`defaults.${key}\`: expected externalCustomerId, customerId or organizationId.`);
    }
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      throw new TypeError(`Expected \`defaults.${key}\` to be a non-empty string, got ${describeValue(value)}.`);
    }
  }
  if (defaults.externalCustomerId !== undefined && defaults.customerId !== undefined) {
    throw new TypeError('Expected only one of `defaults.externalCustomerId` and `defaults.customerId`: Polar takes one customer reference per event.');
  }
  const clock = options.clock ?? defaultClock();
  if (
    typeof clock !== 'object' ||
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new TypeError('Expected `clock` to be an object with now(), setTimeout() and clearTimeout().');
  }
  const resolved: ResolvedOptions = {
    transport,
    indexedDB: factory ?? (undefined as unknown as IDBFactory),
    dbName,
    batchSize: integer('batchSize', options.batchSize, 1, 1000, 100),
    flushInterval: duration('flushInterval', options.flushInterval, 0, 5000),
    autoFlush: options.autoFlush ?? true,
    retry,
    maxQueueSize: integer('maxQueueSize', options.maxQueueSize, 1, Number.MAX_SAFE_INTEGER, 10_000),
    maxBatchBytes: integer('maxBatchBytes', options.maxBatchBytes, 1024, 100_000_000, 60_000),
    leaseDuration: duration('leaseDuration', options.leaseDuration, 1, 30_000),
    durability,
    schemas,
    defaults,
    clock,
  };
  return resolved;
}

/** The global clock, looked up when called (never at import time), so fake timers apply. */
export function defaultClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (callback, ms) => {
      const handle = globalThis.setTimeout(callback, ms) as unknown as { unref?: () => void };
      // In Node, a buffer that was never closed must not keep the process alive.
      handle?.unref?.();
      return handle;
    },
    clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}
