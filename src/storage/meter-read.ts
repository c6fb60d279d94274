import { storageError, type BufferDatabase } from './db.js';
import { customerKeysFor } from './mirror-store.js';
import { asShown, heldIds, liveClaims, statusRange } from './queue.js';
import { BY_CUSTOMER, BY_STATUS, BY_TIME, EVENTS, META, MIRROR, type EventRecord, type MirrorRecord } from './schema.js';

/**
 * The meters' one read (usage and balance): every IndexedDB access of `src/meters`. One read
 * transaction over the events, the mirror and the claim, so an event that moves from one state to
 * another meanwhile is seen in exactly one of them.
 */
export interface MeterQuery {
  /** Whose events; every customer's when null (usage only). */
  customerKey: string | null;
  /** The events' time range: `sinceMs` included, `untilMs` excluded. */
  sinceMs: number;
  untilMs: number;
  /** Read the mirrored server events in the range too. */
  mirror?: boolean;
  /**
   * Which local events: those not confirmed (pending, sent: a small set, read by state), or with
   * `'customer'` every one of the customer's (its confirmed history too, through the customer index).
   */
  local?: 'customer' | undefined;
}

export interface MeterRecords {
  mirrored: MirrorRecord[];
  /** Local events in the query, never dead, as readers show them (`sending` under a live claim). */
  local: EventRecord[];
}

export async function readMeterRecords(db: BufferDatabase, q: MeterQuery, now: number): Promise<MeterRecords> {
  const { sinceMs, untilMs } = q;
  if (!(sinceMs < untilMs)) return { mirrored: [], local: [] };
  // The keys that name one customer (its external id and Polar's id), learned by reconcile.
  const keys = q.customerKey === null ? null : [...new Set(await customerKeysFor(db, q.customerKey))];
  const within = (k: string) => IDBKeyRange.bound([k, sinceMs], [k, untilMs], false, true);
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readonly');
    const events = tx.objectStore(EVENTS);
    const mirrored = q.mirror
      ? keys === null
        ? tx
            .objectStore(MIRROR)
            .index(BY_TIME)
            .getAll(IDBKeyRange.bound(sinceMs, untilMs, false, true))
        : Promise.all(keys.map((k) => tx.objectStore(MIRROR).index(BY_CUSTOMER).getAll(within(k)))).then((r) => r.flat())
      : [];
    const local =
      q.local === 'customer'
        ? Promise.all(keys!.map((k) => events.index(BY_CUSTOMER).getAll(within(k))))
        : // A flush's batch is stored `pending` under the claim (version 3 made stored `sending` pending).
          Promise.all(['pending', 'sent'].map((s) => events.index(BY_STATUS).getAll(statusRange(s as 'pending'))));
    const [m, l, claims] = await Promise.all([mirrored, local, liveClaims(tx.objectStore(META), now)]);
    await tx.done;
    const held = heldIds(claims);
    const records = l
      .flat()
      .filter((r) => r.status !== 'dead' && (keys === null || keys.includes(r.customerKey)) && r.timestampMs >= sinceMs && r.timestampMs < untilMs);
    return { mirrored: m, local: records.map((r) => asShown(r, held)) };
  } catch (error) {
    throw storageError('read', error);
  }
}
