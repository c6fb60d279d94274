import type { PolarEventBufferError } from '../errors.js';
import type { BufferedEvent, ChangeEvent, EventStatus } from '../types.js';
import type { UserEvent } from './structs.js';

/**
 * An entry of the merged view: a local event, or a server event with no local record.
 * @example
 * const history = await mirror.query({ externalCustomerId: 'u1' });
 * const waiting = history.filter((e: LocalEvent) => e.status !== 'confirmed');
 */
export interface LocalEvent extends BufferedEvent {
  /** The mirrored server UserEvent, where there is one. */
  userEvent?: UserEvent;
}

/**
 * What `mirror.reconcile()` resolves with.
 * @example
 * const { matched, added } = await mirror.reconcile();
 */
export interface ReconcileReport {
  /**
   * Server items read (pages fetched, or the array given):
   * `fetched = added + updated + unchanged + invalid + system`.
   */
  fetched: number;
  /** Server events that confirmed a local event. */
  matched: number;
  /** Server events new to the mirror. */
  added: number;
  /** Mirror entries replaced by a newer copy (its content changed, e.g. its `customer`). */
  updated: number;
  /** Items the mirror already held as they are (re-read at the cursor, where timestamps repeat). */
  unchanged: number;
  /** Mirrored events removed by `retention` (local events are never pruned). */
  pruned: number;
  /** Items refused by UserEventStruct (never written). */
  invalid: number;
  /** SystemEvents seen and left out. */
  system: number;
  /** Sent events this reconcile did not find though `confirmGracePeriod` had passed before it began: returned to waiting. */
  resent: number;
  /** Pages read from the server. */
  pages: number;
}

/**
 * Which server events `mirror.reconcile()` pulls; with none, every customer's.
 * @example
 * await mirror.reconcile({ externalCustomerId: 'u1', since: new Date(Date.now() - 86_400_000) });
 */
export interface ReconcileOptions {
  externalCustomerId?: string;
  customerId?: string;
  /** Pull events after this time (on the first reconcile for this customer). */
  since?: Date;
}

/**
 * Filter of `query()`. The merged view holds mirrored server events (status `confirmed`, with
 * `userEvent`; a server event with no local record has the server `id` as its `externalId`) and
 * local events not confirmed yet (`pending`, `sending`, `sent`); `dead` events only when `status`
 * asks for them. Oldest first.
 * @example
 * await mirror.query({ externalCustomerId: 'u1', name: 'api_call', since: startOfMonth, status: ['pending', 'sent'], limit: 50 });
 */
export interface QueryFilter {
  /** One customer (either reference finds the events tracked or returned with the other). */
  externalCustomerId?: string;
  customerId?: string;
  name?: string;
  /** One member of the customer's team (Polar's member id, or yours); not both. */
  memberId?: string;
  externalMemberId?: string;
  /** Events at or after this time. */
  since?: Date;
  /** Events before this time. */
  until?: Date;
  /** @default ["pending", "sending", "sent", "confirmed"] */
  status?: EventStatus | EventStatus[];
  /** Most entries returned (the oldest ones); Infinity for all. @default 1000 */
  limit?: number;
}

/**
 * How much the mirror keeps (see `retention`).
 * @example
 * retention: { maxAge: 30 * 24 * 60 * 60 * 1000, maxEvents: 10_000 }
 */
export interface RetentionOptions {
  /** Oldest event kept, as an age in ms before now (by event timestamp); Infinity keeps every age. @default 7776000000 (90 days) */
  maxAge?: number;
  /** Most mirrored events kept (the newest); Infinity keeps every one. @default 50000 */
  maxEvents?: number;
}

/**
 * Options of `createMirror()`, checked when the mirror is created; durations in milliseconds.
 * @example
 * const mirror = createMirror(buffer, { retention: { maxEvents: 10_000 }, confirmGracePeriod: 15 * 60_000, lookBack: 6 * 3_600_000 });
 */
export interface MirrorOptions {
  /**
   * Bounds on what the mirror keeps: mirrored server events (and the confirmed local events they
   * matched) older than `maxAge` ms (by event timestamp), or beyond the newest `maxEvents`, are
   * pruned oldest first at the end of each reconcile. Waiting, sent and dead events are never pruned.
   * @default { maxAge: 7776000000 (90 days), maxEvents: 50000 }
   */
  retention?: RetentionOptions;
  /**
   * Milliseconds a sent event may stay unlisted before it is sent again. Polar lists events from
   * an asynchronous copy, so a just-accepted event (or a child whose parent has not arrived) can
   * be missing for minutes: "not listed yet" is never "lost". An event is resent only once this
   * long has passed since its send AND a reconcile that started after that covered it without
   * finding it. A resend is harmless (the server dedupes by `external_id`) but costs a request
   * against Polar's 500 requests a minute.
   * @default 1800000 (30 minutes: Polar's list can lag minutes behind ingest; this leaves a wide margin)
   */
  confirmGracePeriod?: number;
  /**
   * Milliseconds before the stored cursor that each reconcile reads again: other devices may
   * backdate events (an offline phone flushes yesterday's events with their own timestamps) into
   * a window this device already read. Re-read events are recognised by their server `id` and not
   * counted as added. It never reaches back past `retention.maxAge`, and costs about one request
   * per 100 events in it; 0 reads from the cursor only.
   * @default 86400000 (24 hours: a device offline overnight still shows up)
   */
  lookBack?: number;
}

/**
 * Events of `mirror.on()`: `"change"` fires for every change of the stored data (this buffer's
 * track, flush, dead letters and clear, another tab's, and reconciles).
 * @example
 * const off = mirror.on('change', () => void refreshHistory());
 */
export interface MirrorEvents {
  reconcile: ReconcileReport;
  change: ChangeEvent;
  error: PolarEventBufferError | Error;
}

/**
 * The read path over one buffer's database, made by `createMirror()`.
 * @example
 * const mirror = createMirror(buffer);
 * await mirror.reconcile({ externalCustomerId: 'u1' });
 * const history = await mirror.query({ externalCustomerId: 'u1' });
 */
export interface Mirror {
  /**
   * Pulls the server's UserEvents into the mirror and confirms the local events they match; with
   * an array, takes those wire UserEvents as given.
   * @default no argument: every customer, from where the last reconcile ended
   * @example
   * await mirror.reconcile({ externalCustomerId: 'u1' });
   */
  reconcile(arg?: ReconcileOptions | unknown[]): Promise<ReconcileReport>;
  /**
   * The merged view: mirrored UserEvents and local events not yet confirmed, oldest first.
   * @default no filter: every event
   * @example
   * const history = await mirror.query({ externalCustomerId: 'u1', limit: 100 });
   */
  query(filter?: QueryFilter): Promise<LocalEvent[]>;
  /**
   * Subscribes to `"reconcile"`, `"change"` or `"error"`; returns the unsubscribe function.
   * @example
   * const off = mirror.on('reconcile', ({ matched }) => console.log(matched, 'confirmed'));
   */
  on<K extends keyof MirrorEvents>(eventName: K, handler: (payload: MirrorEvents[K]) => void): () => void;
  /**
   * Waits for a running reconcile and stops; closing the buffer closes its mirrors.
   * @example
   * await mirror.close();
   */
  close(): Promise<void>;
}
