import type { DBSchema } from 'idb';
import type { Metadata } from '../validation/structs.js';

/**
 * The IndexedDB schema: store and index names, record shapes, and the version. Migrations from
 * each earlier version live in `migrations.ts`. Records are plain structured-clone-safe objects
 * (dates as epoch milliseconds) made and read only by `serialize.ts`.
 */

/** 1: `events` by status and `meta`. 2: customer/fingerprint indexes, the `mirror`. 3: batch claims replace per-event leases. */
export const DB_VERSION = 3;
/**
 * IndexedDB transaction durability: "strict" is on disk before the write resolves.
 * @example
 * createEventBuffer({ transport, durability: 'relaxed' satisfies Durability });
 */
export type Durability = 'strict' | 'relaxed';

export const EVENTS = 'events';
export const MIRROR = 'mirror';
/** Small records: reconcile cursors and aliases, the flush lease, the waiting count, the claim of the batch on the wire. */
export const META = 'meta';

/** `[status, seq]`: a state's records in creation order (flush claims, stats, dead letters). */
export const BY_STATUS = 'byStatus';
/** `[customerKey, timestampMs]`: one customer's events in time order (query, clear). */
export const BY_CUSTOMER = 'byCustomer';
/** `fingerprint`: content hash for matching server events (reconcile). */
export const BY_FINGERPRINT = 'byFingerprint';
/** `[name, timestampMs]` on the mirror. */
export const BY_NAME = 'byName';
/** `timestampMs` on the mirror (retention, unfiltered query). */
export const BY_TIME = 'byTime';

/**
 * Where an event is in its life: `pending` (waiting), `sending` (on the wire: stored `pending`, named by the live claim in `meta`), `sent` (the server answered 2xx), `confirmed` (a reconcile found it on the server), `dead` (the server refused it).
 * @example
 * const failed = await mirror.query({ status: 'dead' satisfies EventStatus });
 */
export type EventStatus = 'pending' | 'sending' | 'sent' | 'confirmed' | 'dead';
export const STATUSES: readonly EventStatus[] = ['pending', 'sending', 'sent', 'confirmed', 'dead'];

/** One tracked event as stored in `events`. */
export interface EventRecord {
  /** Key: the idempotency key sent as `external_id`. */
  externalId: string;
  /** Creation order (UUIDv7-like, time-sortable, unique across tabs): the flush sends in this order. */
  seq: string;
  name: string;
  externalCustomerId: string | null;
  customerId: string | null;
  organizationId: string | null;
  /** The member of the customer's team who caused the event (one of the two, or neither). */
  memberId?: string | null;
  externalMemberId?: string | null;
  metadata: Metadata;
  /** The event's time (given to track(), or the time of track()). */
  timestampMs: number;
  /**
   * The timestamp on the wire when it differs from `timestampMs` (clamped to the server's clock).
   * Fixed when the record is made: every send of the event is byte-identical, so the server's copy
   * matches `fingerprint`. Changed only after the server refused that timestamp (nothing stored).
   */
  wireMs?: number;
  parentId: string | null;
  status: EventStatus;
  /** Failed delivery attempts so far (flushes whose retries ran out, or rejected sends). */
  attempts: number;
  /** Epoch ms before which a flush does not claim this event (0: due now). */
  nextAttemptAt: number;
  createdAt: number;
  sentAt: number | null;
  serverId: string | null;
  /** Why the event is dead (the server's message), or the last delivery error. */
  error: string | null;
  /** `ext:<externalCustomerId>` or `cus:<customerId>`. */
  customerKey: string;
  /** Content hash of the event as sent (its wire timestamp): what a server copy is matched by. */
  fingerprint: string;
  /** Size of the event's JSON on the wire, in UTF-8 bytes. */
  bytes: number;
  /** The server counted this event as a duplicate when it was resent: it provably holds it. */
  heldByServer?: boolean;
  /** Its last send failed for want of a network (no answer at all): the network coming back makes it due. */
  waitingForNetwork?: boolean;
  /** When the event was confirmed by reconcile. */
  confirmedAt?: number;
}

/** One server UserEvent in the mirror: the camelCase model with dates as epoch ms. */
export interface MirrorRecord {
  id: string;
  timestampMs: number;
  name: string;
  customerKey: string;
  /** Fingerprints under each customer reference the server event carries. */
  fingerprints: string[];
  /** The UserEvent in structured-clone-safe form (dates as ms); see serialize.ts. */
  event: Record<string, unknown>;
  /** When this copy was written (retention). */
  storedAt: number;
  /** externalId of the local event it confirmed, when there is one. */
  localExternalId: string | null;
}

export interface MetaRecord {
  key: string;
  value: unknown;
}

export interface BufferDBSchema extends DBSchema {
  events: {
    key: string;
    value: EventRecord;
    indexes: { byStatus: [string, string]; byCustomer: [string, number]; byFingerprint: string };
  };
  mirror: {
    key: string;
    value: MirrorRecord;
    indexes: { byCustomer: [string, number]; byName: [string, number]; byFingerprint: string; byTime: number };
  };
  meta: {
    key: string;
    value: MetaRecord;
  };
}
