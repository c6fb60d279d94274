import type { Infer, Struct } from 'superstruct';
import type { PolarEventBufferError } from './errors.js';
import type { EventStatus } from './storage/schema.js';
import type { Metadata } from './validation/structs.js';

export type { EventStatus };

/**
 * What one flush did.
 * @example
 * const { sent, remaining, stoppedBy } = await buffer.flush();
 */
export interface FlushReport {
  /** Events the server acknowledged (inserted or counted as duplicates). */
  sent: number;
  /** Of those, events the server already held. */
  duplicates: number;
  /** Events set aside in the dead letters by this flush. */
  deadLettered: number;
  /** Events still waiting when the flush ended. */
  remaining: number;
  /** Requests made (retries included). */
  requests: number;
  /**
   * Why the flush stopped before the queue was empty, if it did. `storage-full`: the disk is full, so
   * an answer could not be stored (the events were delivered, and stay waiting: a later flush
   * resends them, which the server counts as duplicates).
   */
  stoppedBy?: 'retries-exhausted' | 'unauthorized' | 'rejected' | 'retry-after' | 'closed' | 'not-due' | 'locked' | 'storage-full';
}

/**
 * Input of `track()` for the event named `Name`. With `schemas`, the metadata of each named event
 * is typed by its struct (`Infer<struct>`) and required; events with no schema take any Polar
 * metadata. Without `schemas`, every name takes any Polar metadata.
 *
 * With a union of names it is the union of each name's input (so each `name` keeps its own
 * metadata type).
 *
 * @default Name: every name in `Schemas`
 * @example
 * const schemas = { api_call: object({ tokens: number() }) };
 * type ApiCall = TrackInputFor<typeof schemas, 'api_call'>; // metadata: { tokens: number } & Metadata
 * const input: ApiCall = { name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 12 } };
 */
export type TrackInputFor<Schemas extends Record<string, Struct<any, any>>, Name extends string = keyof Schemas & string> = Name extends unknown
  ? TrackInputOf<Schemas, Name>
  : never;

/**
 * The input of one `track()` call, `Name` inferred from the literal `name` passed. Not distributive
 * on purpose: TypeScript infers a literal `Name` through this form but not through a conditional
 * type, and a union over all strings could not work (`"api_call"` is also a `string`, so a loose
 * member would accept any metadata for it).
 */
type TrackInputOf<Schemas extends Record<string, Struct<any, any>>, Name extends string> = Omit<TrackInputBase, 'name'> & {
  name: Name;
} & MetadataFor<Schemas, Name>;

/** The metadata field of the event named `Name`: required and typed by its struct, else any Polar metadata. */
type MetadataFor<Schemas extends Record<string, Struct<any, any>>, Name extends string> = string extends keyof Schemas
  ? { metadata?: Metadata }
  : Name extends keyof Schemas
    ? { metadata: Infer<Schemas[Name]> & Metadata }
    : { metadata?: Metadata };

/**
 * The fields of a `track()` input besides `metadata` (typed per event name by `TrackInputFor`).
 * @example
 * { name: 'api_call', externalCustomerId: 'user_42', timestamp: new Date(), externalId: 'job-7-call-1' }
 */
export interface TrackInputBase {
  /** Event name, 1 to 128 characters (what Polar's meters filter on). */
  name: string;
  /** Your id of the customer (one of externalCustomerId or customerId, or a default). */
  externalCustomerId?: string;
  /** Polar's customer id (a UUID). */
  customerId?: string;
  /** Polar's id of the member of the customer's team who caused the event (a UUID); not with externalMemberId. */
  memberId?: string;
  /** Your id of that member; not with memberId. */
  externalMemberId?: string;
  /** When it happened. @default the time of track() */
  timestamp?: Date;
  /** Idempotency key sent as `external_id`. @default a new UUIDv7 */
  externalId?: string;
  /** A Polar event id, or the externalId of an event tracked earlier. */
  parentId?: string;
  /** Only with tokens that are not organization tokens. */
  organizationId?: string;
}

/**
 * A tracked event as the buffer holds it.
 * @example
 * const event = await buffer.track({ name: 'api_call', externalCustomerId: 'u1' });
 * event.status; // 'pending'
 * event.externalId; // a UUIDv7, sent as external_id
 */
export interface BufferedEvent {
  externalId: string;
  name: string;
  externalCustomerId: string | null;
  customerId: string | null;
  organizationId: string | null;
  /** The member of the customer's team who caused the event (Polar's member id, or yours). */
  memberId: string | null;
  externalMemberId: string | null;
  metadata: Metadata;
  timestamp: Date;
  parentId: string | null;
  status: EventStatus;
  /** Failed delivery attempts so far. */
  attempts: number;
  createdAt: Date;
  /** Polar's event id once reconcile confirmed the event. */
  serverId: string | null;
  /** Why the event is dead, or the last delivery error. */
  error: string | null;
  /** Not sent before this time (backoff kept across reloads); null when due. */
  nextAttemptAt: Date | null;
  sentAt: Date | null;
}

/**
 * Event counts per status, and mirrored server events (`buffer.stats()`).
 * @example
 * const { pending, dead } = await buffer.stats();
 * if (dead > 0) showDeadLetterBanner();
 */
export interface BufferStats {
  pending: number;
  sending: number;
  sent: number;
  confirmed: number;
  dead: number;
  mirrored: number;
  /** With `persist: true`: whether the browser agreed to keep this origin's storage. */
  persisted?: boolean;
  /** With `persist: true`, where the browser says: bytes this origin uses, and may use. */
  usage?: number;
  quota?: number;
}

/**
 * Payload of the `"change"` event: the stored data changed.
 * @example
 * buffer.on('change', ({ reason, source }) => refreshHistory());
 */
export interface ChangeEvent {
  /** What changed. */
  reason: 'track' | 'flush' | 'deadletter' | 'reconcile' | 'retry' | 'purge' | 'clear';
  /** "local": this buffer; "remote": another tab or worker on the same database. */
  source: 'local' | 'remote';
}

/**
 * Payload of the `"deadletter"` event: events the server refused.
 * @example
 * buffer.on('deadletter', ({ events }) => console.warn(events.map((e) => e.error)));
 */
export interface DeadLetterEvent {
  events: BufferedEvent[];
}

/**
 * Events of `buffer.on()`.
 * @example
 * const off = buffer.on('flush', (report) => console.log(report.sent, 'sent'));
 * off();
 */
export interface BufferEvents {
  flush: FlushReport;
  deadletter: DeadLetterEvent;
  error: PolarEventBufferError | Error;
  change: ChangeEvent;
}

/**
 * The buffer that `createEventBuffer()` returns.
 * @example
 * const buffer: EventBuffer = createEventBuffer({ transport: httpTransport({ baseUrl: '/api/usage' }) });
 * await buffer.track({ name: 'api_call', externalCustomerId: 'u1' });
 * await buffer.flush();
 */
export interface EventBuffer<Schemas extends Record<string, Struct<any, any>> = Record<string, never>> {
  /**
   * Validates and durably stores one event; resolves once IndexedDB committed it.
   * @throws EventValidationError (nothing written), QueueFullError, StorageError, ClosedError
   * @example
   * const event = await buffer.track({ name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 12 } });
   */
  track<Name extends string>(input: TrackInputOf<Schemas, Name>): Promise<BufferedEvent>;
  /**
   * All or nothing: every input valid and stored, or none stored.
   * @example
   * await buffer.trackMany([{ name: 'a', externalCustomerId: 'u1' }, { name: 'b', externalCustomerId: 'u1' }]);
   */
  trackMany<const Names extends readonly string[]>(inputs: readonly [...{ [K in keyof Names]: TrackInputOf<Schemas, Names[K]> }]): Promise<BufferedEvent[]>;
  /**
   * Sends the waiting events, oldest first, in batches; one flush at a time per database.
   * @example
   * window.addEventListener('online', () => void buffer.flush());
   */
  flush(): Promise<FlushReport>;
  /**
   * Counts of events per status, and of mirrored server events.
   * @example
   * const { pending, sending } = await buffer.stats();
   */
  stats(): Promise<BufferStats>;
  /**
   * Dead letters, oldest first (at most `limit`, default 1000).
   * @default { limit: 1000 }
   * @example
   * for (const event of await buffer.deadLetters()) console.warn(event.name, event.error);
   */
  deadLetters(options?: { limit?: number }): Promise<BufferedEvent[]>;
  /**
   * Dead letters (all, or those named) back to waiting, attempts reset; resolves to how many.
   * @default no argument: every dead letter
   * @example
   * await buffer.retryDeadLetters([event.externalId]);
   */
  retryDeadLetters(externalIds?: string[]): Promise<number>;
  /**
   * Deletes dead letters (all, or those named); resolves to how many.
   * @default no argument: every dead letter
   * @example
   * const removed = await buffer.purgeDeadLetters();
   */
  purgeDeadLetters(externalIds?: string[]): Promise<number>;
  /**
   * Removes a customer's local events and mirror (sign-out on a shared device); no argument: everything.
   * @default no argument: everything
   * @example
   * await buffer.clear({ externalCustomerId: signedOutUser.id });
   */
  clear(ref?: { externalCustomerId?: string; customerId?: string }): Promise<void>;
  /**
   * Subscribes to `"flush"`, `"deadletter"`, `"error"` or `"change"`; returns the unsubscribe function.
   * @example
   * const off = buffer.on('deadletter', ({ events }) => alertOps(events));
   * off();
   */
  on<K extends keyof BufferEvents>(eventName: K, handler: (payload: BufferEvents[K]) => void): () => void;
  /**
   * Stops timers, lets a running flush finish (its batch stays safe), closes the database.
   * @example
   * window.addEventListener('pagehide', () => void buffer.close());
   */
  close(): Promise<void>;
}
