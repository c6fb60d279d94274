import { storageError, type BufferDatabase } from './db.js';
import { customerKeysFor } from './mirror-store.js';
import { asShown, heldIds, liveClaims, statusRange } from './queue.js';
import { BY_CUSTOMER, BY_STATUS, BY_TIME, EVENTS, META, MIRROR, type EventRecord, type EventStatus, type MirrorRecord } from './schema.js';

/**
 * The meters' reads (usage and balance): every IndexedDB access of `src/meters`, as verbs. Each is
 * one read transaction over the events, the mirror and the claim, so an event that moves from one
 * state to another meanwhile is seen in exactly one of them.
 */

/** Whose events, over which time (`sinceMs` included, `untilMs` excluded); every customer when `customerKey` is null. */
export interface MeterScope {
  customerKey: string | null;
  sinceMs: number;
  untilMs: number;
}

export interface UsageRecords {
  /** Mirrored server events in the scope (empty unless asked for). */
  mirrored: MirrorRecord[];
  /** Local events in the scope that are neither confirmed nor dead, as readers show them (`sending` under a live claim). */
  local: EventRecord[];
}

/** The states of a local event that a meter's local part counts (confirmed ones are in the mirror). */
const UNCONFIRMED: readonly EventStatus[] = ['pending', 'sending', 'sent'];

/**
 * A meter's events: with `withMirror`, the mirrored server events through the customer (or time)
 * index; and the local events not confirmed yet, read by state (a small set: they are confirmed or
 * resent), never through the confirmed history.
 */
export async function readUsageRecords(db: BufferDatabase, scope: MeterScope, withMirror: boolean, now: number): Promise<UsageRecords> {
  const { sinceMs, untilMs } = scope;
  if (!(sinceMs < untilMs)) return { mirrored: [], local: [] };
  const keys = await keysOf(db, scope.customerKey);
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readonly');
    let mirrored: MirrorRecord[][] = [];
    if (withMirror) {
      const index = tx.objectStore(MIRROR).index(keys === null ? BY_TIME : BY_CUSTOMER);
      const ranges =
        keys === null ? [IDBKeyRange.bound(sinceMs, untilMs, false, true)] : keys.map((k) => IDBKeyRange.bound([k, sinceMs], [k, untilMs], false, true));
      mirrored = await Promise.all(ranges.map((range) => index.getAll(range)));
    }
    const byStatus = tx.objectStore(EVENTS).index(BY_STATUS);
    // A flush's batch is stored `pending` under a claim; `sending` is what versions before batch claims stored.
    const local = await Promise.all(UNCONFIRMED.map((s) => byStatus.getAll(statusRange(s))));
    const held = heldIds(await liveClaims(tx.objectStore(META), now));
    await tx.done;
    const inScope = (r: EventRecord) => (keys === null || keys.includes(r.customerKey)) && r.timestampMs >= sinceMs && r.timestampMs < untilMs;
    return {
      mirrored: mirrored.flat(),
      local: local
        .flat()
        .filter(inScope)
        .map((r) => asShown(r, held)),
    };
  } catch (error) {
    throw storageError('read', error);
  }
}

/**
 * One customer's local events that a meter on the server may not count yet, whatever their
 * timestamp: every one not dead (pending, sending, sent, and with `withConfirmed` the confirmed
 * ones, read through the customer index), as readers show them.
 */
export async function readCustomerRecords(db: BufferDatabase, customerKey: string, withConfirmed: boolean, now: number): Promise<EventRecord[]> {
  const keys = (await keysOf(db, customerKey)) ?? [customerKey];
  try {
    const tx = db.transaction([EVENTS, META], 'readonly');
    const events = tx.objectStore(EVENTS);
    const records = withConfirmed
      ? (await Promise.all(keys.map((k) => events.index(BY_CUSTOMER).getAll(IDBKeyRange.bound([k, -Infinity], [k, Infinity]))))).flat()
      : (await Promise.all(UNCONFIRMED.map((s) => events.index(BY_STATUS).getAll(statusRange(s))))).flat().filter((r) => keys.includes(r.customerKey));
    const held = heldIds(await liveClaims(tx.objectStore(META), now));
    await tx.done;
    return records.filter((r) => r.status !== 'dead').map((r) => asShown(r, held));
  } catch (error) {
    throw storageError('read', error);
  }
}

/** The records of these events as readers show them, in one read transaction; gone ones are left out. */
export async function readRecords(db: BufferDatabase, externalIds: readonly string[], now: number): Promise<EventRecord[]> {
  try {
    const tx = db.transaction([EVENTS, META], 'readonly');
    const records = await Promise.all(externalIds.map((id) => tx.objectStore(EVENTS).get(id)));
    const held = heldIds(await liveClaims(tx.objectStore(META), now));
    await tx.done;
    return records.filter((r): r is EventRecord => r !== undefined).map((r) => asShown(r, held));
  } catch (error) {
    throw storageError('read', error);
  }
}

/** The customer keys that name one customer (its external id and Polar's id), or null for all. */
async function keysOf(db: BufferDatabase, customerKey: string | null): Promise<string[] | null> {
  return customerKey === null ? null : [...new Set(await customerKeysFor(db, customerKey))];
}
