/**
 * One error family. Every error the library raises is a `PolarEventBufferError` with a stable
 * kebab-case `code`, a message that says what happened and what to do, and the original error as
 * `cause` where there is one.
 */

/**
 * Stable codes, one per error class (and a few sub-cases of TransportError).
 * @example
 * if (isPolarEventBufferError(error) && error.code === 'queue-full') pauseRecording();
 */
export type ErrorCode =
  | 'event-validation'
  | 'queue-full'
  | 'transport'
  | 'storage'
  | 'closed'
  | 'no-indexeddb'
  | 'meter-definition';

/**
 * One problem found in a tracked input.
 * @example
 * { path: ['metadata', 'tokens'], message: 'Expected a number, but received: "x"' }
 */
export interface ValidationFailure {
  /** Path of the failing value inside the tracked input, e.g. `["metadata", "tokens"]`. */
  path: string[];
  /** What is wrong and what is expected. */
  message: string;
}

/**
 * Base class of every error this library throws.
 * @example
 * if (error instanceof PolarEventBufferError) console.error(error.code, error.message);
 */
export class PolarEventBufferError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PolarEventBufferError';
    this.code = code;
  }
}

/**
 * `track()` input (or a dead letter being retried) does not pass validation. Nothing was written.
 * @example
 * try {
 *   await buffer.track(input);
 * } catch (error) {
 *   if (error instanceof EventValidationError) for (const f of error.failures) console.warn(f.path.join('.'), f.message);
 * }
 */
export class EventValidationError extends PolarEventBufferError {
  readonly failures: ValidationFailure[];
  constructor(failures: ValidationFailure[], options?: { cause?: unknown; index?: number }) {
    const where = options?.index === undefined ? 'Event' : `Event at index ${options.index}`;
    const list = failures
      .slice(0, 5)
      .map((f) => `${f.path.length > 0 ? f.path.join('.') : '(event)'}: ${f.message}`)
      .join('; ');
    const more = failures.length > 5 ? ` (and ${failures.length - 5} more)` : '';
    super(
      'event-validation',
      `${where} was refused and nothing was stored: ${list}${more}. Fix the input and track it again.`,
      options,
    );
    this.name = 'EventValidationError';
    this.failures = failures;
  }
}

/**
 * A server list item that is not a valid UserEvent: skipped, never written to the mirror, and
 * reported on `"error"`. It is an `EventValidationError` (same `code` and `failures`), about an
 * item the server sent rather than a tracked input.
 * @example
 * buffer.on('error', (error) => {
 *   if (error instanceof ServerEventValidationError) console.warn(`server item ${error.position} skipped`, error.failures);
 * });
 */
export class ServerEventValidationError extends EventValidationError {
  /** The item's `id`, when it has a string one. */
  readonly serverId: string | undefined;
  /** Its position in the page (or in the array given to reconcile()). */
  readonly position: number;
  constructor(failures: ValidationFailure[], init: { serverId: string | undefined; position: number; page: number | undefined; cause?: unknown }) {
    super(failures, init.cause === undefined ? {} : { cause: init.cause });
    this.name = 'ServerEventValidationError';
    this.serverId = init.serverId;
    this.position = init.position;
    const where = init.page === undefined ? `item ${init.position} of the array given to reconcile()` : `item ${init.position} of page ${init.page} of GET /v1/events/`;
    const list = failures
      .slice(0, 5)
      .map((f) => `${f.path.length > 0 ? f.path.join('.') : '(event)'}: ${f.message}`)
      .join('; ');
    this.message =
      `Server event ${init.serverId === undefined ? '(no id)' : JSON.stringify(init.serverId)} (${where}) is not a valid UserEvent and was skipped ` +
      `(not written to the mirror): ${list}${failures.length > 5 ? ` (and ${failures.length - 5} more)` : ''}. ` +
      'Check that the transport returns Polar\'s events unchanged.';
  }
}

/**
 * The queue already holds `maxQueueSize` waiting events. Nothing was written.
 * @example
 * if (error instanceof QueueFullError) console.warn(`${error.waiting} events wait (limit ${error.maxQueueSize})`);
 */
export class QueueFullError extends PolarEventBufferError {
  readonly maxQueueSize: number;
  readonly waiting: number;
  constructor(waiting: number, adding: number, maxQueueSize: number) {
    super(
      'queue-full',
      `The queue holds ${waiting} waiting events and adding ${adding} would pass maxQueueSize (${maxQueueSize}); nothing was stored. ` +
        'Flush (check that the transport reaches the server) or raise maxQueueSize.',
    );
    this.name = 'QueueFullError';
    this.maxQueueSize = maxQueueSize;
    this.waiting = waiting;
  }
}

/**
 * One entry of a 422 answer's `detail`.
 * @example
 * { type: 'value_error', loc: ['body', 'events', 3, 'name'], msg: 'String should have at most 128 characters' }
 */
export interface ValidationDetail {
  type?: string;
  msg: string;
  loc: (string | number)[];
  input?: unknown;
}

/**
 * A request to the server failed: network error, timeout, or a non-2xx answer.
 * @example
 * buffer.on('error', (error) => {
 *   if (error instanceof TransportError && error.status === 401) refreshSession();
 * });
 */
export class TransportError extends PolarEventBufferError {
  /** HTTP status; 0 when no answer came (network error, timeout, aborted). */
  readonly status: number;
  /** How long the server asked us to wait, in ms (from `Retry-After`), when it said. */
  readonly retryAfter: number | undefined;
  /** The parsed `detail` of a 422 answer. */
  readonly detail: ValidationDetail[] | undefined;
  /** The server's clock (its `Date` header) when it answered. */
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
    super('transport', message, { cause: init.cause });
    this.name = 'TransportError';
    this.status = init.status;
    this.retryAfter = init.retryAfter;
    this.detail = init.detail;
    this.serverDate = init.serverDate;
    this.url = init.url;
  }
}

/**
 * IndexedDB failed (quota, a deleted database, a broken record...).
 * @example
 * if (error instanceof StorageError) console.error(`IndexedDB failed during ${error.operation}`, error.cause);
 */
export class StorageError extends PolarEventBufferError {
  readonly operation: string;
  constructor(operation: string, message: string, options?: { cause?: unknown }) {
    super('storage', `IndexedDB failed during ${operation}: ${message}`, options);
    this.name = 'StorageError';
    this.operation = operation;
  }
}

/**
 * The buffer was closed; create a new one to go on.
 * @example
 * await buffer.close();
 * await buffer.track(input); // rejects with ClosedError
 */
export class ClosedError extends PolarEventBufferError {
  constructor(operation: string) {
    super('closed', `Cannot ${operation}: this event buffer was closed. Create a new buffer with createEventBuffer().`);
    this.name = 'ClosedError';
  }
}

/**
 * No IndexedDB in this environment and none given.
 * @example
 * // Node: provide IndexedDB before creating a buffer
 * import 'fake-indexeddb/auto';
 */
export class NoIndexedDBError extends PolarEventBufferError {
  constructor() {
    super(
      'no-indexeddb',
      'No IndexedDB is available here: pass an IDBFactory as the `indexedDB` option, with the IndexedDB ' +
        "classes (IDBRequest, IDBCursor...) as globals. In Node, `import 'fake-indexeddb/auto'` provides both.",
    );
    this.name = 'NoIndexedDBError';
  }
}

/**
 * A meter definition that Polar's server would refuse or could not evaluate; nothing was computed.
 * @example
 * if (error instanceof MeterDefinitionError) console.warn(error.path); // "filter.clauses.1.operator"
 */
export class MeterDefinitionError extends PolarEventBufferError {
  /** Where in the meter the problem is, dot-separated (`filter.clauses.1.operator`). */
  readonly path: string;
  constructor(path: string, problem: string) {
    super('meter-definition', `Meter refused at ${path || '(meter)'}: ${problem}`);
    this.name = 'MeterDefinitionError';
    this.path = path;
  }
}

const NAMES = new Set([
  'PolarEventBufferError',
  'EventValidationError',
  'ServerEventValidationError',
  'QueueFullError',
  'TransportError',
  'StorageError',
  'ClosedError',
  'NoIndexedDBError',
  'MeterDefinitionError',
]);

/**
 * True for any error of this family, also across realms (iframes, workers) where `instanceof` fails.
 * @example
 * worker.onmessage = ({ data }) => { if (isPolarEventBufferError(data.error)) report(data.error.code); };
 */
export function isPolarEventBufferError(error: unknown): error is PolarEventBufferError {
  return (
    error instanceof PolarEventBufferError ||
    (typeof error === 'object' &&
      error !== null &&
      NAMES.has((error as { name?: unknown }).name as string) &&
      typeof (error as { code?: unknown }).code === 'string')
  );
}
