/**
 * The stable `code` of each error of this family; README "Errors" gives the advice per code, so
 * messages stay short: what failed, on what.
 * @example
 * if (isPolarEventBufferError(error) && error.code === ('queue-full' satisfies ErrorCode)) showBacklogWarning();
 */
export type ErrorCode = 'event-validation' | 'queue-full' | 'transport' | 'storage' | 'closed' | 'no-indexeddb' | 'meter-definition';

/**
 * One failed rule of an event: where (`path`, e.g. `["metadata", "tokens"]`) and what.
 * @example
 * { path: ['name'], message: 'Expected a string of 1-128 characters, but received ""' }
 */
export interface ValidationFailure {
  path: string[];
  message: string;
}

/**
 * The base of every error this library throws or emits.
 * @example
 * if (isPolarEventBufferError(error)) console.warn(error.code, error.message);
 */
export class PolarEventBufferError extends Error {
  override name = 'PolarEventBufferError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

const listFailures = (failures: ValidationFailure[]): string =>
  failures
    .slice(0, 3)
    .map((f) => `${f.path.join('.') || '(event)'}: ${f.message}`)
    .join('; ') + (failures.length > 3 ? ` (+${failures.length - 3} more)` : '');

/**
 * `track()` input (or a server item) does not pass validation. Nothing was written.
 * @example
 * catch (error) { if (error instanceof EventValidationError) console.warn(error.failures); }
 */
export class EventValidationError extends PolarEventBufferError {
  override name = 'EventValidationError';
  readonly failures: ValidationFailure[];
  constructor(failures: ValidationFailure[], options?: { cause?: unknown; index?: number }) {
    super('event-validation', `Invalid event${options?.index === undefined ? '' : ` at index ${options.index}`}: ${listFailures(failures)}`, options);
    this.failures = failures;
  }
}

/**
 * A server list item that is not a valid UserEvent: skipped (not mirrored), reported on `"error"`.
 * @example
 * mirror.on('error', (e) => { if (e instanceof ServerEventValidationError) console.warn(e.serverId, e.failures); });
 */
export class ServerEventValidationError extends EventValidationError {
  override name = 'ServerEventValidationError';
  /** The item's `id`, when it has a string one. */
  readonly serverId: string | undefined;
  /** Its position in the page (or in the array given to reconcile()). */
  readonly position: number;
  constructor(failures: ValidationFailure[], init: { serverId: string | undefined; position: number; page: number | undefined; cause?: unknown }) {
    super(failures, init.cause === undefined ? {} : { cause: init.cause });
    this.serverId = init.serverId;
    this.position = init.position;
    this.message = `Invalid server event ${init.serverId ?? '(no id)'} at ${init.page === undefined ? '' : `page ${init.page} `}item ${init.position}, skipped: ${listFailures(failures)}`;
  }
}

/**
 * `maxQueueSize` events already wait. Nothing was written.
 * @example
 * if (error instanceof QueueFullError) console.warn(`${error.waiting} waiting, limit ${error.maxQueueSize}`);
 */
export class QueueFullError extends PolarEventBufferError {
  override name = 'QueueFullError';
  readonly maxQueueSize: number;
  readonly waiting: number;
  constructor(waiting: number, adding: number, maxQueueSize: number) {
    super('queue-full', `Queue full: ${waiting} waiting + ${adding} > maxQueueSize (${maxQueueSize})`);
    this.maxQueueSize = maxQueueSize;
    this.waiting = waiting;
  }
}

/**
 * One entry of a 422 answer's `detail`.
 * @example
 * { type: 'string_too_long', loc: ['body', 'events', 3, 'name'], msg: 'String should have at most 128 characters' }
 */
export interface ValidationDetail {
  type?: string;
  msg: string;
  loc: (string | number)[];
  input?: unknown;
}

/**
 * A request failed: no answer (status 0: network, timeout, abort) or a non-2xx answer.
 * @example
 * buffer.on('error', (e) => { if (e instanceof TransportError && e.status === 401) refreshSession(); });
 */
export class TransportError extends PolarEventBufferError {
  override name = 'TransportError';
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** How long the server asked to wait, in ms (`Retry-After`). */
  readonly retryAfter: number | undefined;
  /** The parsed `detail` of a 422 answer. */
  readonly detail: ValidationDetail[] | undefined;
  /** The server's clock (its `Date` header). */
  readonly serverDate: Date | undefined;
  readonly url: string | undefined;
  constructor(
    message: string,
    init: {
      status: number;
      retryAfter?: number | undefined;
      detail?: ValidationDetail[] | undefined;
      serverDate?: Date | undefined;
      url?: string | undefined;
      cause?: unknown;
    },
  ) {
    super('transport', message, init);
    this.status = init.status;
    this.retryAfter = init.retryAfter;
    this.detail = init.detail;
    this.serverDate = init.serverDate;
    this.url = init.url;
  }
}

/**
 * IndexedDB failed (quota, a deleted database...); the transaction was rolled back.
 * @example
 * if (error instanceof StorageError) console.error(error.operation, error.cause);
 */
export class StorageError extends PolarEventBufferError {
  override name = 'StorageError';
  readonly operation: string;
  constructor(operation: string, message: string, options?: { cause?: unknown }) {
    super('storage', `IndexedDB failed (${operation}): ${message}`, options);
    this.operation = operation;
  }
}

/**
 * The buffer (or mirror) was closed.
 * @example
 * await buffer.close(); await buffer.track(input); // rejects with ClosedError
 */
export class ClosedError extends PolarEventBufferError {
  override name = 'ClosedError';
  constructor(operation: string) {
    super('closed', `Cannot ${operation}: closed`);
  }
}

/**
 * No IndexedDB here and none given (`indexedDB` option; in Node, `import 'fake-indexeddb/auto'`).
 * @example
 * import 'fake-indexeddb/auto';
 */
export class NoIndexedDBError extends PolarEventBufferError {
  override name = 'NoIndexedDBError';
  constructor() {
    super('no-indexeddb', 'No IndexedDB: pass the `indexedDB` option');
  }
}

/**
 * A meter definition that Polar itself could not evaluate; nothing was computed from it.
 * @example
 * catch (error) { if (error instanceof MeterDefinitionError) console.warn(error.path, error.message); }
 */
export class MeterDefinitionError extends PolarEventBufferError {
  override name = 'MeterDefinitionError';
  /** Where in the meter definition, e.g. `filter.clauses.1.operator`. */
  readonly path: string;
  constructor(path: string, message: string) {
    super('meter-definition', `Invalid meter at ${path || '(meter)'}: ${message}`);
    this.path = path;
  }
}

/**
 * True for any error of this family, also across realms (iframes, workers) where `instanceof` fails.
 * @example
 * if (isPolarEventBufferError(data.error)) report(data.error.code);
 */
export function isPolarEventBufferError(error: unknown): error is PolarEventBufferError {
  const e = error as { name?: unknown; code?: unknown } | null;
  return error instanceof PolarEventBufferError || (typeof e?.name === 'string' && e.name.endsWith('Error') && CODES.includes(e.code as ErrorCode));
}

const CODES: unknown[] = ['event-validation', 'queue-full', 'transport', 'storage', 'closed', 'no-indexeddb', 'meter-definition'];
