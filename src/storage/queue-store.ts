import { QueueFullError } from '../errors.js';
import { storageError, unwrap, type BufferDatabase } from './db.js';
import { BY_CUSTOMER, BY_STATUS, EVENTS, MIRROR, META, STATUSES, type EventRecord, type EventStatus, type MetaRecord } from './schema.js';
import { BODY_OVERHEAD_BYTES } from './serialize.js';

/**
 * The queue's domain verbs over the `events` store. Each verb is one transaction; callers never
 * see one. Every state move of the design (pending → sending → sent/dead/pending ...) happens here.
 */

export type Durability = 'strict' | 'relaxed';

const HIGH = [] as unknown as string; // an array sorts after every string: the top of a [status, seq] range

/** Key range of one status in the `[status, seq]` index. */
export function statusRange(status: EventStatus): IDBKeyRange {
  return IDBKeyRange.bound([status, ''], [status, HIGH]);
}

/** pending and sending together: the "waiting" events that count against maxQueueSize. */
function waitingRange(): IDBKeyRange {
  return IDBKeyRange.bound(['pending', ''], ['sending', HIGH]);
}

/** Aborts a transaction whose failure is reported by the caller (its `done` must not reject unheard). */
function abortQuietly(tx: { done: Promise<unknown>; abort(): void }): void {
  tx.done.catch(() => undefined);
  tx.abort();
}

export interface AppendGroup {
  records: EventRecord[];
}

export type AppendOutcome = { ok: true; records: EventRecord[] } | { ok: false; error: Error };

/**
 * The queue-size check without counting the whole backlog on every write (an index count is O(n)
 * in Chromium: issue 6). Per connection we keep an upper bound of the waiting (pending + sending)
 * count, valid while the `meta` record WAITING_TOKEN is unchanged. Every write that can make the
 * waiting count GROW (appendGroups, reviveDead, a resend of sent events) stores a new random token
 * in the same transaction (see `markWaitingGrew`), in any tab; moves out of waiting only make the
 * bound looser (or tighter, where this connection sees them: settle, claimBatch). appendGroups
 * counts exactly, inside its transaction, only when the bound says the limit could be reached, so
 * the check stays exact at the limit.
 */
const WAITING_TOKEN = 'waiting-token';

interface WaitingBound {
  /** waiting <= upperBound while the stored token equals `token`. */
  upperBound: number;
  token: unknown;
}

const waitingBounds = new WeakMap<object, WaitingBound>();

function newToken(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Records, inside `tx` (which must include the `meta` store), that the waiting count may have
 * grown: every connection's cached bound is void from then on. Call it from any write that moves
 * events INTO pending/sending.
 */
export function markWaitingGrew(tx: { objectStore(name: typeof META): { put(value: { key: string; value: unknown }): unknown } }): void {
  void Promise.resolve(tx.objectStore(META).put({ key: WAITING_TOKEN, value: newToken() })).catch(() => undefined);
}

/** This connection saw `count` events leave waiting (sent, dead): the bound tightens. */
function noteWaitingShrank(db: BufferDatabase, count: number): void {
  const bound = waitingBounds.get(db);
  if (bound && count > 0) bound.upperBound = Math.max(0, bound.upperBound - count);
}

/**
 * Writes several groups (one per track()/trackMany() call) in ONE transaction. A group is all or
 * nothing: a group that would pass maxQueueSize fails alone with QueueFullError. An event whose
 * externalId is already stored is not written again: the stored record is returned (idempotent).
 * Resolves after the transaction's `complete`, i.e. once the records are durable.
 *
 * Speed (issue 6): no request is awaited one after another. Only externalIds the caller chose
 * (externalId !== seq) can already be stored; they are looked up all at once, with the `meta`
 * token, in one round trip; generated UUIDv7 ids are new by construction. The waiting count is
 * counted exactly only when the cached bound could reach maxQueueSize (see WAITING_TOKEN).
 * `waiting` in the result is exact or an upper bound.
 */
export async function appendGroups(
  db: BufferDatabase,
  groups: AppendGroup[],
  options: { maxQueueSize: number; durability: Durability; knownWaiting?: number },
): Promise<{ outcomes: AppendOutcome[]; waiting: number }> {
  const outcomes: AppendOutcome[] = [];
  let waiting = 0;
  const bound = waitingBounds.get(db);
  // Set again only when this transaction commits.
  waitingBounds.delete(db);
  let next: WaitingBound | undefined;
  try {
    const tx = db.transaction([EVENTS, META], 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const store = tx.objectStore(EVENTS);
    const rawStore = unwrap(store) as unknown as IDBObjectStore;
    const chosen = new Set<string>();
    let total = 0;
    for (const group of groups) {
      total += group.records.length;
      for (const record of group.records) if (record.externalId !== record.seq) chosen.add(record.externalId);
    }
    if (bound && chosen.size === 0 && options.knownWaiting === undefined && bound.upperBound + total <= options.maxQueueSize) {
      // Fast path (the usual track()): every id is generated, so every record is new, and the
      // cached bound says all groups fit. Issue every request at once — read the token, the puts,
      // the new token — and wait for ONE round trip, as a bare put would; then check the bound.
      const rawMeta = unwrap(tx.objectStore(META)) as unknown as IDBObjectStore;
      const tokenRead = rawMeta.get(WAITING_TOKEN) as IDBRequest<MetaRecord | undefined>;
      const token = new Promise<unknown>((resolve, reject) => {
        tokenRead.onsuccess = () => resolve(tokenRead.result?.value);
        tokenRead.onerror = () => reject(tokenRead.error);
      });
      token.catch(() => undefined); // an abort rejects it too; the failure is reported once, by tx.done
      try {
        for (const group of groups) for (const record of group.records) rawStore.put(record);
      } catch (error) {
        abortQuietly(tx);
        throw error;
      }
      const grown = newToken();
      rawMeta.put({ key: WAITING_TOKEN, value: grown });
      let before = bound.upperBound;
      if ((await token) !== bound.token) {
        // Another writer made the queue grow since: count exactly (our puts included) and take
        // back, in order, the groups that no longer fit.
        before = (await store.index(BY_STATUS).count(waitingRange())) - total;
      }
      waiting = before;
      for (const group of groups) {
        if (waiting + group.records.length > options.maxQueueSize) {
          for (const record of group.records) rawStore.delete(record.externalId);
          outcomes.push({ ok: false, error: new QueueFullError(waiting, group.records.length, options.maxQueueSize) });
          continue;
        }
        waiting += group.records.length;
        outcomes.push({ ok: true, records: group.records });
      }
      next = { upperBound: waiting, token: grown };
      await tx.done;
      waitingBounds.set(db, next);
      return { outcomes, waiting };
    }
    const chosenIds = [...chosen];
    const [tokenRecord, ...found] = await Promise.all([
      tx.objectStore(META).get(WAITING_TOKEN),
      ...chosenIds.map((id) => store.get(id)),
    ]);
    // Stored records by externalId: those found, then the fresh ones of earlier groups of this transaction.
    const known = new Map<string, EventRecord>();
    chosenIds.forEach((id, i) => {
      const record = found[i];
      if (record) known.set(id, record);
    });
    const token = tokenRecord?.value;
    let exact: boolean;
    if (options.knownWaiting !== undefined) {
      waiting = options.knownWaiting;
      exact = true;
    } else if (bound && bound.token === token) {
      waiting = bound.upperBound;
      exact = false;
    } else {
      waiting = await store.index(BY_STATUS).count(waitingRange());
      exact = true;
    }
    let added = 0;
    for (const group of groups) {
      const stored: EventRecord[] = [];
      const fresh: EventRecord[] = [];
      const freshById = new Map<string, EventRecord>();
      for (const record of group.records) {
        const existing = known.get(record.externalId) ?? freshById.get(record.externalId);
        if (existing) stored.push(existing);
        else {
          fresh.push(record);
          stored.push(record);
          freshById.set(record.externalId, record);
        }
      }
      if (!exact && waiting + fresh.length > options.maxQueueSize) {
        // Near the limit: count exactly (this transaction's own writes included).
        waiting = await store.index(BY_STATUS).count(waitingRange());
        exact = true;
      }
      if (waiting + fresh.length > options.maxQueueSize) {
        outcomes.push({ ok: false, error: new QueueFullError(waiting, fresh.length, options.maxQueueSize) });
        continue;
      }
      try {
        // Raw requests: no promise per record (a failed one aborts the transaction, which tx.done reports).
        for (const record of fresh) rawStore.put(record);
      } catch (error) {
        // A synchronous throw (DataCloneError...) does not abort the transaction by itself.
        abortQuietly(tx);
        throw error;
      }
      for (const record of fresh) if (chosen.has(record.externalId)) known.set(record.externalId, record);
      waiting += fresh.length;
      added += fresh.length;
      outcomes.push({ ok: true, records: stored });
    }
    if (added > 0) {
      const grown = newToken();
      (unwrap(tx.objectStore(META)) as unknown as IDBObjectStore).put({ key: WAITING_TOKEN, value: grown });
      next = { upperBound: waiting, token: grown };
    } else {
      next = { upperBound: waiting, token };
    }
    await tx.done;
  } catch (error) {
    throw storageError('track', error);
  }
  waitingBounds.set(db, next);
  return { outcomes, waiting };
}

/** Number of waiting (pending + sending) events. */
export async function countWaiting(db: BufferDatabase): Promise<number> {
  try {
    return await db.countFromIndex(EVENTS, BY_STATUS, waitingRange());
  } catch (error) {
    throw storageError('count', error);
  }
}

export interface ClaimOptions {
  now: number;
  batchSize: number;
  maxBatchBytes: number;
  leaseDuration: number;
  owner: string;
  durability: Durability;
  /** At most this many records are looked at, due or not (bounds the work when many are backing off). */
  scanLimit?: number;
  /** The network just came back: events that were backing off only for want of it are due now. */
  networkBack?: boolean;
  /**
   * Look for expired leases (crashed holders) first (default true). A flush does it on its first
   * claim only: the later ones would read back its own batches in flight.
   */
  reclaim?: boolean;
}

export interface ClaimResult {
  /** The batch, now `sending` under our lease, in creation order, parents before children. */
  batch: EventRecord[];
  /** Children of dead parents, dead-lettered by this claim. */
  dead: EventRecord[];
  /** Expired leases returned to pending. */
  reclaimed: number;
  /** Pending events left that were not claimed because they are not due yet (earliest time), if seen. */
  nextDueAt: number | null;
  /** A single event is larger than maxBatchBytes (it can never be sent at that limit). */
  oversized: EventRecord[];
  /** Records that are not events this library wrote (failed the shape check): quarantined as dead letters. */
  corrupted: EventRecord[];
}

/**
 * Why a stored record cannot be an event this library wrote (a bug, a manual edit, a storage
 * fault), or null when its shape is sound. Such a record could never be sent and would stop every
 * flush at the same place; it is set aside instead.
 */
export function recordCorruption(record: EventRecord): string | null {
  const r = record as unknown as Record<string, unknown>;
  const bad: string[] = [];
  const isText = (v: unknown) => typeof v === 'string' && v.length > 0;
  const isNumber = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (!isText(r['externalId'])) bad.push('externalId');
  if (!isText(r['name'])) bad.push('name');
  if (!isNumber(r['timestampMs'])) bad.push('timestampMs');
  if (typeof r['metadata'] !== 'object' || r['metadata'] === null || Array.isArray(r['metadata'])) bad.push('metadata');
  if (!isText(r['externalCustomerId']) && !isText(r['customerId'])) bad.push('externalCustomerId/customerId');
  if (r['parentId'] !== null && !isText(r['parentId'])) bad.push('parentId');
  if (!isNumber(r['bytes']) || !isNumber(r['attempts']) || !isNumber(r['nextAttemptAt'])) bad.push('bytes/attempts/nextAttemptAt');
  return bad.length === 0 ? null : `${bad.join(', ')} missing or of the wrong type`;
}

/**
 * In one transaction: expired `sending` leases go back to `pending`; then up to `batchSize` due
 * `pending` events are read in creation order with a cursor (never the whole queue), bounded by
 * `maxBatchBytes`, holding back a child whose parent is still waiting and dead-lettering a child
 * whose parent is dead; the batch is marked `sending` with a lease.
 */
export async function claimBatch(db: BufferDatabase, options: ClaimOptions): Promise<ClaimResult> {
  const { now, batchSize, maxBatchBytes, leaseDuration, owner } = options;
  const scanLimit = options.scanLimit ?? Math.max(1000, batchSize * 10);
  const result: ClaimResult = { batch: [], dead: [], reclaimed: 0, nextDueAt: null, oversized: [], corrupted: [] };
  try {
    const tx = db.transaction(EVENTS, 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const index = tx.store.index(BY_STATUS);
    // Reads in a few getAll() round trips and writes with raw puts that nothing waits for (a failed
    // one aborts the transaction, which tx.done reports): a cursor step per record cost two serial
    // round trips per event in Chromium (issue 6: flush >= 5,000 events/s).
    const rawStore = unwrap(tx.store) as unknown as IDBObjectStore;

    for (const record of options.reclaim === false ? [] : await index.getAll(statusRange('sending'))) {
      // `!(… > now)`: a record without a lease time (corrupted) is reclaimed too, then quarantined below.
      if (!(record.leaseUntil > now)) {
        rawStore.put({ ...record, status: 'pending', leaseUntil: 0, leaseOwner: null });
        result.reclaimed++;
      }
    }

    const inBatch = new Set<string>();
    // A batch holds first sends or resends (events sent before that reconcile could not confirm),
    // never both: a resend batch counted all-duplicates then proves the server holds its events.
    let resendBatch: boolean | undefined;
    let bytes = BODY_OVERHEAD_BYTES;
    let scanned = 0;
    let after: string | undefined; // seq of the last record read: the next chunk starts past it
    let full = false;
    while (!full && result.batch.length < batchSize && scanned < scanLimit) {
      // Read a little more than the batch still needs, so a few skipped records cost no extra round trip.
      const want = Math.min(batchSize - result.batch.length + Math.min(16, Math.ceil(batchSize / 10)), scanLimit - scanned);
      const range = after === undefined ? statusRange('pending') : IDBKeyRange.bound(['pending', after], ['pending', HIGH], true, false);
      const chunk = await index.getAll(range, want);
      for (const record of chunk) {
        if (result.batch.length >= batchSize || scanned >= scanLimit) {
          full = true;
          break;
        }
        scanned++;
        after = record.seq;
        const corruption = recordCorruption(record);
        if (corruption !== null) {
          const dead = { ...record, status: 'dead', leaseUntil: 0, leaseOwner: null, error: `corrupted record: ${corruption}; set aside so the queue goes on` } as EventRecord;
          rawStore.put(dead);
          result.corrupted.push(dead);
          continue;
        }
        if (record.nextAttemptAt > now && !(options.networkBack && record.waitingForNetwork)) {
          result.nextDueAt = Math.min(result.nextDueAt ?? Infinity, record.nextAttemptAt);
          continue;
        }
        if (record.parentId !== null && !inBatch.has(record.parentId)) {
          const parent = record.parentId === record.externalId ? undefined : await tx.store.get(record.parentId);
          if (parent && (parent.status === 'pending' || parent.status === 'sending')) {
            // The parent goes first; this child waits for a later batch.
            continue;
          }
          if (parent && parent.status === 'dead') {
            const dead: EventRecord = {
              ...record,
              status: 'dead',
              error: `Its parent event ${parent.externalId} was dead-lettered: ${parent.error ?? 'no reason given'}`,
            };
            rawStore.put(dead);
            result.dead.push(dead);
            continue;
          }
        }
        if (BODY_OVERHEAD_BYTES + record.bytes > maxBatchBytes) {
          // It can never fit: set it aside with a reason rather than block the queue forever.
          const dead: EventRecord = {
            ...record,
            status: 'dead',
            error: `The event is ${record.bytes} bytes on the wire, more than maxBatchBytes (${maxBatchBytes}); raise maxBatchBytes and retry it.`,
          };
          rawStore.put(dead);
          result.oversized.push(dead);
          continue;
        }
        const resend = record.sentAt !== null;
        if (resendBatch !== undefined && resend !== resendBatch) continue;
        const extra = record.bytes + (result.batch.length > 0 ? 1 : 0);
        if (bytes + extra > maxBatchBytes) {
          full = true;
          break;
        }
        bytes += extra;
        resendBatch = resend;
        const claimed: EventRecord = { ...record, status: 'sending', leaseUntil: now + leaseDuration, leaseOwner: owner };
        rawStore.put(claimed);
        result.batch.push(claimed);
        inBatch.add(claimed.externalId);
      }
      if (chunk.length < want) break;
    }
    await tx.done;
  } catch (error) {
    throw storageError('flush (claim)', error);
  }
  noteWaitingShrank(db, result.dead.length + result.oversized.length + result.corrupted.length);
  return result;
}

export type Settlement =
  /** `record`: the copy the claim wrote; while the event is still `sending` it is written from it, unread. */
  | { externalId: string; to: 'sent'; heldByServer?: boolean; fingerprint?: string; record?: EventRecord }
  | { externalId: string; to: 'dead'; error: string }
  | { externalId: string; to: 'pending'; nextAttemptAt: number; countAttempt: boolean; error: string | null; waitingForNetwork?: boolean };

/**
 * Applies the outcome of one send in one transaction. A record settles only while it is still ours
 * (`sending` under our lease) — except `sent`, which is true whoever holds it now, since the server
 * has the event. Returns the records as written.
 */
export async function settle(
  db: BufferDatabase,
  settlements: Settlement[],
  options: { now: number; owner: string; durability: Durability },
): Promise<EventRecord[]> {
  const written: EventRecord[] = [];
  let leftWaiting = 0;
  try {
    const tx = db.transaction(EVENTS, 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const rawStore = unwrap(tx.store) as unknown as IDBObjectStore;
    // Speed (issue 6): a batch the server took settles without reading its records back one by one.
    // One key-only read of the `sending` index says which are still `sending` (not confirmed by a
    // reconcile nor removed by clear() meanwhile): those are written from the claimed copy, the
    // others are read as before.
    const fromClaim = settlements.some((s) => s.to === 'sent' && s.record)
      ? new Set(await tx.store.index(BY_STATUS).getAllKeys(statusRange('sending')))
      : new Set<string>();
    const records = await Promise.all(
      settlements.map((s) =>
        s.to === 'sent' && s.record && s.record.status === 'sending' && fromClaim.has(s.externalId) ? s.record : tx.store.get(s.externalId),
      ),
    );
    settlements.forEach((s, i) => {
      const record = records[i];
      if (!record) return;
      let next: EventRecord | undefined;
      if (s.to === 'sent') {
        if (record.status === 'sent' || record.status === 'confirmed') return;
        next = { ...record, status: 'sent', sentAt: options.now, leaseUntil: 0, leaseOwner: null, error: null, nextAttemptAt: 0 };
        if (s.heldByServer) next.heldByServer = true;
        // Sent with a clamped timestamp: the server holds that one, so match on it.
        if (s.fingerprint !== undefined) next.fingerprint = s.fingerprint;
      } else {
        if (record.status !== 'sending' || record.leaseOwner !== options.owner) return;
        if (s.to === 'dead') {
          next = { ...record, status: 'dead', leaseUntil: 0, leaseOwner: null, error: s.error };
        } else {
          next = {
            ...record,
            status: 'pending',
            leaseUntil: 0,
            leaseOwner: null,
            attempts: record.attempts + (s.countAttempt ? 1 : 0),
            nextAttemptAt: s.nextAttemptAt,
            error: s.error,
          };
          if (s.waitingForNetwork) next.waitingForNetwork = true;
          else delete next.waitingForNetwork;
        }
      }
      try {
        rawStore.put(next);
      } catch (error) {
        abortQuietly(tx);
        throw error;
      }
      if ((record.status === 'pending' || record.status === 'sending') && next.status !== 'pending') leftWaiting++;
      written.push(next);
    });
    await tx.done;
  } catch (error) {
    throw storageError('flush (settle)', error);
  }
  noteWaitingShrank(db, leftWaiting);
  return written;
}

/** Counts per status (one index count each, no record read). */
export async function countByStatus(db: BufferDatabase): Promise<Record<EventStatus, number> & { mirrored: number }> {
  try {
    const tx = db.transaction([EVENTS, MIRROR], 'readonly');
    const index = tx.objectStore(EVENTS).index(BY_STATUS);
    const counts = await Promise.all(STATUSES.map((s) => index.count(statusRange(s))));
    const mirrored = await tx.objectStore(MIRROR).count();
    const out = { mirrored } as Record<EventStatus, number> & { mirrored: number };
    STATUSES.forEach((s, i) => (out[s] = counts[i]!));
    return out;
  } catch (error) {
    throw storageError('stats', error);
  }
}

/** Records of one status in creation order, read with a cursor up to `limit`. */
export async function listByStatus(db: BufferDatabase, status: EventStatus, limit: number): Promise<EventRecord[]> {
  try {
    return await db.getAllFromIndex(EVENTS, BY_STATUS, statusRange(status), limit);
  } catch (error) {
    throw storageError('read', error);
  }
}

/** Records with these keys (missing ones left out). */
export async function getEvents(db: BufferDatabase, externalIds: string[]): Promise<EventRecord[]> {
  try {
    const tx = db.transaction(EVENTS, 'readonly');
    const records = await Promise.all(externalIds.map((id) => tx.store.get(id)));
    return records.filter((r): r is EventRecord => r !== undefined);
  } catch (error) {
    throw storageError('read', error);
  }
}

/**
 * Dead letters back to `pending` (attempts reset), all of them or those named. Records are moved in
 * pages so memory stays bounded however many there are.
 */
export async function reviveDead(
  db: BufferDatabase,
  externalIds: string[] | undefined,
  options: { durability: Durability; revise?: (record: EventRecord) => EventRecord },
): Promise<EventRecord[]> {
  return editDead(db, externalIds, options.durability, (record) => {
    const base = options.revise ? options.revise(record) : record;
    return { ...base, status: 'pending', attempts: 0, nextAttemptAt: 0, error: null, leaseUntil: 0, leaseOwner: null };
  });
}

/** Deletes dead letters, all of them or those named. */
export async function purgeDead(db: BufferDatabase, externalIds: string[] | undefined, durability: Durability): Promise<EventRecord[]> {
  return editDead(db, externalIds, durability, () => null);
}

async function editDead(
  db: BufferDatabase,
  externalIds: string[] | undefined,
  durability: Durability,
  edit: (record: EventRecord) => EventRecord | null,
): Promise<EventRecord[]> {
  const touched: EventRecord[] = [];
  let revived = false;
  try {
    const tx = db.transaction([EVENTS, META], 'readwrite', { durability });
    const store = tx.objectStore(EVENTS);
    if (externalIds) {
      for (const id of externalIds) {
        const record = await store.get(id);
        if (!record || record.status !== 'dead') continue;
        const next = edit(record);
        if (next) await store.put(next);
        else await store.delete(id);
        if (next && next.status !== 'dead') revived = true;
        touched.push(record);
      }
    } else {
      let cursor = await store.index(BY_STATUS).openCursor(statusRange('dead'));
      while (cursor) {
        const next = edit(cursor.value);
        touched.push(cursor.value);
        if (next) await cursor.update(next);
        else await cursor.delete();
        if (next && next.status !== 'dead') revived = true;
        cursor = await cursor.continue();
      }
    }
    // Dead letters back in the queue: the waiting count grew (see WAITING_TOKEN).
    if (revived) markWaitingGrew(tx);
    await tx.done;
  } catch (error) {
    throw storageError('dead letters', error);
  }
  return touched;
}

/**
 * Removes the local events (every state), mirror entries, cursors and aliases under these customer
 * keys (one customer under each reference it is known by); with no keys, everything in every store.
 */
export async function clearCustomer(
  db: BufferDatabase,
  customerKeys: string[] | undefined,
  durability: Durability,
): Promise<{ events: number; mirrored: number }> {
  const removed = { events: 0, mirrored: 0 };
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readwrite', { durability });
    if (!customerKeys) {
      removed.events = await tx.objectStore(EVENTS).count();
      removed.mirrored = await tx.objectStore(MIRROR).count();
      await Promise.all([tx.objectStore(EVENTS).clear(), tx.objectStore(MIRROR).clear(), tx.objectStore(META).clear()]);
    } else {
      for (const key of customerKeys) {
        const range = IDBKeyRange.bound([key, -Infinity], [key, Infinity]);
        let cursor = await tx.objectStore(EVENTS).index(BY_CUSTOMER).openKeyCursor(range);
        while (cursor) {
          await tx.objectStore(EVENTS).delete(cursor.primaryKey);
          removed.events++;
          cursor = await cursor.continue();
        }
        let mirror = await tx.objectStore(MIRROR).index(BY_CUSTOMER).openKeyCursor(range);
        while (mirror) {
          await tx.objectStore(MIRROR).delete(mirror.primaryKey);
          removed.mirrored++;
          mirror = await mirror.continue();
        }
        await tx.objectStore(META).delete(`cursor:${key}`);
        await tx.objectStore(META).delete(`alias:${key}`);
      }
    }
    await tx.done;
  } catch (error) {
    throw storageError('clear', error);
  }
  return removed;
}

/** A small key/value read from `meta`. */
export async function readMeta<T>(db: BufferDatabase, key: string): Promise<T | undefined> {
  try {
    return (await db.get(META, key))?.value as T | undefined;
  } catch (error) {
    throw storageError('read', error);
  }
}

export async function writeMeta(db: BufferDatabase, key: string, value: unknown, durability: Durability): Promise<void> {
  try {
    const tx = db.transaction(META, 'readwrite', { durability });
    await tx.store.put({ key, value });
    await tx.done;
  } catch (error) {
    throw storageError('write', error);
  }
}
