import { storageError } from '../storage/db.js';
import { customerKeysFor } from '../storage/mirror-store.js';
import { asShown, heldIds, liveClaims, statusRange } from '../storage/queue.js';
import { BY_CUSTOMER, BY_STATUS, BY_TIME, EVENTS, META, MIRROR, type EventRecord } from '../storage/schema.js';
import { toLocalEvent } from '../storage/serialize.js';
import { mirrorSeam } from './mirror.js';
import { checkFilter, mirrorEntry } from './query.js';
import type { LocalEvent, Mirror } from './types.js';

/** Which events `forEachMerged` visits: one customer (under every key it is known by), a time range. */
export interface MergedFilter {
  externalCustomerId?: string;
  customerId?: string;
  /** At or after this time. */
  since?: Date;
  /** Before this time. */
  until?: Date;
}

const FILTER_KEYS = ['externalCustomerId', 'customerId', 'since', 'until'];

/**
 * Visits every event of the merged view once (internal, for `./meters`): each mirrored UserEvent
 * (as its confirmed local event where it matched one, with `userEvent`), then each local event
 * that is `pending`, `sending` or `sent`; never `dead`. In no particular order.
 *
 * It reads through the indexes with cursors in ONE read transaction, so it sees one consistent
 * state (an event confirmed meanwhile cannot be visited twice, nor missed) and holds one record
 * at a time, however large the mirror. `visit` must be synchronous: awaiting inside it would end
 * the transaction.
 */
export async function forEachMerged(mirror: Mirror, filter: MergedFilter, visit: (event: LocalEvent) => void): Promise<void> {
  const seam = mirrorSeam(mirror, 'read');
  if (typeof filter !== 'object' || filter === null) throw new TypeError('Expected a filter object { externalCustomerId?, customerId?, since?, until? }.');
  for (const key of Object.keys(filter)) {
    if (!FILTER_KEYS.includes(key)) throw new TypeError(`Unknown filter \`${key}\`. Known: ${FILTER_KEYS.join(', ')}.`);
  }
  const f = checkFilter(filter);
  if (!(f.sinceMs < f.untilMs)) return;
  const db = await seam.connection.get();
  const keys = f.customerKey === null ? null : [...new Set(await customerKeysFor(db, f.customerKey))];
  const inTime = (r: { timestampMs: number }) => r.timestampMs >= f.sinceMs && r.timestampMs < f.untilMs;
  // An error of `visit` is the caller's: it ends the walk and is rethrown as it is.
  let thrown: { error: unknown } | undefined;
  const emit = (event: LocalEvent): boolean => {
    try {
      visit(event);
      return true;
    } catch (error) {
      thrown = { error };
      return false;
    }
  };
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readonly');
    const events = tx.objectStore(EVENTS);
    const held = heldIds(await liveClaims(tx.objectStore(META), seam.clock.now()));

    const mirrorIndex = tx.objectStore(MIRROR).index(keys === null ? BY_TIME : BY_CUSTOMER);
    const mirrorRanges =
      keys === null ? [IDBKeyRange.bound(f.sinceMs, f.untilMs, false, true)] : keys.map((key) => customerTimeRange(key, f.sinceMs, f.untilMs));
    for (const range of mirrorRanges) {
      for (let cursor = await mirrorIndex.openCursor(range); cursor && !thrown; cursor = await cursor.continue()) {
        const record = cursor.value;
        const local = record.localExternalId === null ? undefined : await events.get(record.localExternalId);
        if (!emit(mirrorEntry(record, local))) break;
      }
    }

    // Local events not confirmed (a confirmed one was visited with its mirrored event) nor dead.
    const visitLocal = (stored: EventRecord): boolean =>
      stored.status === 'confirmed' || stored.status === 'dead' || !inTime(stored) || emit(toLocalEvent(asShown(stored, held)));
    const localIndex = events.index(keys === null ? BY_STATUS : BY_CUSTOMER);
    const localRanges =
      keys === null ? (['pending', 'sending', 'sent'] as const).map((s) => statusRange(s)) : keys.map((key) => customerTimeRange(key, f.sinceMs, f.untilMs));
    for (const range of localRanges) {
      for (let cursor = await localIndex.openCursor(range); cursor && !thrown; cursor = await cursor.continue()) {
        if (!visitLocal(cursor.value)) break;
      }
    }
    await tx.done;
  } catch (error) {
    if (!thrown) throw storageError('read', error);
  }
  if (thrown) throw thrown.error;
}

function customerTimeRange(key: string, sinceMs: number, untilMs: number): IDBKeyRange {
  return IDBKeyRange.bound([key, sinceMs], [key, untilMs], false, true);
}
