import type { IDBPTransaction } from 'idb';
import { QueueFullError, type ValidationFailure } from '../errors.js';
import { rawTx, storageError, type BufferDatabase } from './db.js';
import {
  BY_CUSTOMER,
  BY_FINGERPRINT,
  BY_STATUS,
  BY_TIME,
  EVENTS,
  META,
  MIRROR,
  STATUSES,
  type BufferDBSchema,
  type Durability,
  type EventRecord,
  type EventStatus,
  type MirrorRecord,
} from './schema.js';

export type { Durability };
import { BODY_OVERHEAD_BYTES, sameEvent, withWireTime } from './serialize.js';

/**
 * Every IndexedDB transaction of the write path, as domain verbs (append, claim, settle...). Each
 * verb is one transaction that awaits only its own requests (the transaction-lifetime rule).
 */

export type Store = 'events' | 'meta' | 'mirror';
export type Tx = IDBPTransaction<BufferDBSchema, Store[], 'readwrite'>;

const TOP = [] as unknown as string; // an array sorts after every string: the top of a [status, seq] range

/** One status of the `[status, seq]` index, from `after` (exclusive) when given. */
export const statusRange = (status: EventStatus, after?: string, to: string = TOP): IDBKeyRange =>
  IDBKeyRange.bound([status, after ?? ''], [status, to], after !== undefined);

/** Runs `fn` in one transaction; a throw aborts it, so nothing of it is stored. */
export async function inTx<T>(db: BufferDatabase, stores: Store[], durability: Durability | null, op: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  let tx: Tx | undefined;
  try {
    tx = db.transaction(stores, durability ? 'readwrite' : 'readonly', { durability: durability ?? 'default' }) as unknown as Tx;
    tx.done.catch(() => undefined); // awaited below; reported once
    const value = await fn(tx);
    await tx.done;
    return value;
  } catch (error) {
    try {
      tx?.abort();
    } catch {
      // already finished
    }
    throw storageError(op, error);
  }
}

const raw = (tx: Tx, store: Store): IDBObjectStore => rawTx(tx).objectStore(store);

// ----- the waiting count (maxQueueSize across tabs) -----------------------------------------
// A counter in `meta`, read and written in the transaction that moves events into or out of
// `pending`: IndexedDB serialises those transactions across tabs, so the bound holds everywhere.
// Every verb that moves events into or out of `pending` moves it (addWaiting); a missing one is
// recounted from the index by the next append.
const WAITING = 'waiting';
const LEASE = 'flush-lease';

async function readWaiting(tx: Tx): Promise<number> {
  const value = (await tx.objectStore(META).get(WAITING))?.value;
  return typeof value === 'number' ? value : tx.objectStore(EVENTS).index(BY_STATUS).count(statusRange('pending'));
}

/**
 * Moves the counter by `delta` in the transaction that moves the events (a missing counter stays
 * missing: the next append counts the index, which holds these writes).
 */
export async function addWaiting(tx: Tx, delta: number): Promise<void> {
  const value = delta === 0 ? undefined : (await tx.objectStore(META).get(WAITING))?.value;
  if (typeof value === 'number') raw(tx, META).put({ key: WAITING, value: Math.max(0, value + delta) });
}

// ----- the batch on the wire ------------------------------------------------------------------
/**
 * One flusher runs at a time (the flush lock), so one `meta` record names the batch it sends.
 * The events stay `pending` in the store (a flush writes each event once: `sent`); readers show
 * them as `sending` while the claim lives (`asShown`). A new claim replaces the old one: whoever
 * holds the lock knows the previous holder is gone, so a dead tab's batch goes out at once.
 */
export interface ClaimLease {
  owner: string;
  leaseUntil: number;
  ids: string[];
  firstSeq: string;
  lastSeq: string;
  /** Per customer key, the earliest timestamp among the batch (reconcile's look-back). */
  earliest: Record<string, number>;
}
const CLAIM = 'claim';

/** The live claims (zero or one). */
export async function liveClaims(meta: { get(key: string): Promise<{ value: unknown } | undefined> }, now: number): Promise<ClaimLease[]> {
  const claim = (await meta.get(CLAIM))?.value as ClaimLease | undefined;
  return claim && claim.leaseUntil > now ? [claim] : [];
}

export const heldIds = (claims: readonly ClaimLease[]): Set<string> => new Set(claims.flatMap((c) => c.ids));

/** The record as every reader shows it: `sending` while pending and named by a live claim. */
export const asShown = (record: EventRecord, held: ReadonlySet<string>): EventRecord =>
  record.status === 'pending' && held.has(record.externalId) ? { ...record, status: 'sending' } : record;

// ----- track ------------------------------------------------------------------------------------
/** A slice of a long write ends after this much work or this many puts (no long task). */
const SLICE_MS = 30;
const SLICE_PUTS = 500;

/**
 * Counts puts and ends a slice when it is due: it awaits a request of the transaction, whose
 * success comes in a new task after every put before it, so the transaction goes on and the main
 * thread is released in between.
 */
function slicer(tx: Tx): (puts: number) => Promise<void> | undefined {
  let start = Date.now();
  let count = 0;
  return (puts) => {
    count += puts;
    if (count < SLICE_PUTS && Date.now() - start <= SLICE_MS) return undefined;
    count = 0;
    return tx
      .objectStore(META)
      .get(WAITING)
      .then(() => void (start = Date.now()));
  };
}

/** Records whose input gave a timestamp (a retried track() without one is still the same event). */
export const timeGiven = new WeakSet<EventRecord>();

/** A refusal of one input of a call, by its index in the call. */
export interface InputFailure extends ValidationFailure {
  index: number;
}

/** How far a parentId chain is followed looking for a loop (deeper chains are not refused). */
const MAX_CHAIN = 1000;

/**
 * Writes track() calls (one group each) in one transaction: `build` turns a group into records
 * (a throw fails that group alone), and a group that would pass maxQueueSize fails alone with
 * QueueFullError. A caller-chosen externalId already stored returns the stored event when the
 * input is that same event again, and fails the group (`refuse`, path externalId) when it is
 * another; a parentId chain that loops back fails it too (path parentId). A burst is written in
 * slices of about SLICE_MS: the transaction goes on from the success of a request, so the main
 * thread is never held long and the burst still commits once.
 */
export function append<G>(
  db: BufferDatabase,
  groups: G[],
  build: (group: G) => EventRecord[],
  refuse: (group: G, failures: InputFailure[]) => Error,
  maxQueueSize: number,
  durability: Durability,
  now: number,
): Promise<{ results: (EventRecord[] | Error)[]; waiting: number }> {
  const written = inTx(db, [EVENTS, META], durability, 'track', async (tx) => {
    const store = tx.objectStore(EVENTS);
    const tryBuild = (group: G): EventRecord[] | Error => {
      try {
        return build(group);
      } catch (error) {
        return error as Error;
      }
    };
    const first = groups.length === 1 ? tryBuild(groups[0]!) : undefined;
    // New ids: no stored event holds or names them, so no duplicate and no loop.
    if (Array.isArray(first) && first.length <= SLICE_PUTS && first.every((r) => r.externalId === r.seq)) {
      // One call of new events (an awaited track()): write first and read the count in the same
      // round trip; past the limit, aborting takes the write back.
      for (const record of first) raw(tx, EVENTS).put(record);
      // A missing counter is recounted from the index, which already holds this write.
      const stored = (await tx.objectStore(META).get(WAITING))?.value;
      const waiting = typeof stored === 'number' ? stored : (await readWaiting(tx)) - first.length;
      if (waiting + first.length > maxQueueSize) {
        tx.abort();
        throw new QueueFullError(waiting, first.length, maxQueueSize);
      }
      raw(tx, META).put({ key: WAITING, value: waiting + first.length });
      // Nothing more comes: commit with this put instead of a round trip after it.
      rawTx(tx).commit?.();
      return { results: [first], waiting: waiting + first.length };
    }
    let waiting = await readWaiting(tx);
    const slice = slicer(tx);
    const seen = new Map<string, EventRecord>();
    let held: Set<string> | undefined;
    const results: (EventRecord[] | Error)[] = [];
    for (const group of groups) {
      await slice(0);
      const records = first ?? tryBuild(group);
      if (records instanceof Error) {
        results.push(records);
        continue;
      }
      const out: EventRecord[] = [];
      const fresh: EventRecord[] = [];
      const failures: InputFailure[] = [];
      const mine = new Map<string, EventRecord>();
      for (const [index, record] of records.entries()) {
        const id = record.externalId;
        let stored = mine.get(id) ?? seen.get(id) ?? (id === record.seq ? undefined : await store.get(id));
        if (stored && !sameEvent(stored, record, timeGiven.has(record))) {
          failures.push({ index, path: ['externalId'], message: `"${id}" is held by another event` });
          continue;
        }
        if (stored?.status === 'pending') stored = asShown(stored, (held ??= heldIds(await liveClaims(tx.objectStore(META), now))));
        out.push(stored ?? record);
        if (!stored) fresh.push(record), mine.set(id, record);
      }
      for (const [index, record] of records.entries()) {
        // Follow the parents through this call and the stored events: back to this event is a loop.
        const chain = [record.externalId];
        for (let parent = fresh.includes(record) ? record.parentId : null; parent !== null && chain.length < MAX_CHAIN; ) {
          if (chain.includes(parent)) {
            failures.push({ index, path: ['parentId'], message: `Expected no loop, but ${[...chain, parent].join(' → ')}` });
            break;
          }
          chain.push(parent);
          parent = (mine.get(parent) ?? seen.get(parent) ?? (await store.get(parent)))?.parentId ?? null;
        }
      }
      if (failures.length > 0) {
        results.push(refuse(group, failures));
        continue;
      }
      if (waiting + fresh.length > maxQueueSize) {
        results.push(new QueueFullError(waiting, fresh.length, maxQueueSize));
        continue;
      }
      for (const record of fresh) {
        seen.set(record.externalId, record);
        raw(tx, EVENTS).put(record);
        await slice(1);
      }
      waiting += fresh.length;
      results.push(out);
    }
    raw(tx, META).put({ key: WAITING, value: waiting });
    return { results, waiting };
  });
  // The lone call refused after its optimistic write: the transaction was aborted, nothing stored.
  return written.catch((error: unknown) => {
    if (error instanceof QueueFullError && groups.length === 1) return { results: [error], waiting: error.waiting };
    throw error;
  });
}

// ----- flush ------------------------------------------------------------------------------------
export interface ClaimOptions {
  owner: string;
  now: number;
  leaseDuration: number;
  batchSize: number;
  /** This send's body limit (a keepalive body is smaller than `maxBatchBytes`). */
  maxBytes: number;
  /** The configured maxBatchBytes: only an event over it can never be sent. */
  maxBatchBytes: number;
  /** The network came back: events that waited only for it are due. */
  networkBack?: boolean;
  durability: Durability;
}

/** Why a stored record cannot be an event this library wrote, or null. */
export function recordCorruption(r: EventRecord): string | null {
  const text = (v: unknown) => typeof v === 'string' && v.length > 0;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  const bad = [
    !text(r.externalId) && 'externalId',
    !text(r.name) && 'name',
    !num(r.timestampMs) && 'timestampMs',
    (typeof r.metadata !== 'object' || r.metadata === null || Array.isArray(r.metadata)) && 'metadata',
    !text(r.externalCustomerId) && !text(r.customerId) && 'externalCustomerId/customerId',
    r.parentId !== null && !text(r.parentId) && 'parentId',
    !(num(r.bytes) && num(r.attempts) && num(r.nextAttemptAt)) && 'bytes/attempts/nextAttemptAt',
  ].filter(Boolean);
  return bad.length ? `${bad.join(', ')} missing or of the wrong type` : null;
}

export interface Claimed {
  batch: EventRecord[];
  dead: EventRecord[];
  nextDueAt: number | null;
}

/**
 * Claims the next batch in creation order: due pending events, within batchSize and the byte
 * limit, a child only after its parent's ingest was answered or in the same batch; new events and
 * resends never share a batch (an all-duplicates answer then proves the server holds the resent
 * ones). Sets aside, dead, what can never be sent: corrupted records, children of dead parents,
 * events over maxBatchBytes. On a full disk (QuotaExceededError) the same batch is
 * read without writing: the flush still delivers, and only this flusher (it holds the lock) knows.
 */
export async function claimBatch(db: BufferDatabase, o: ClaimOptions): Promise<Claimed> {
  try {
    return await inTx(db, [EVENTS, META], o.durability, 'flush', (tx) => scanBatch(tx, o, true));
  } catch (error) {
    if (!isQuotaError(error)) throw error;
    return inTx(db, [EVENTS, META], null, 'flush', (tx) => scanBatch(tx, o, false));
  }
}

/** Whether a storage failure is the disk (or the origin's quota) being full. */
export const isQuotaError = (error: unknown): boolean =>
  [error, (error as { cause?: unknown } | null)?.cause].some((e) => (e as Error | null)?.name === 'QuotaExceededError');

async function scanBatch(tx: Tx, o: ClaimOptions, write: boolean): Promise<Claimed> {
  const store = tx.objectStore(EVENTS);
  const batch: EventRecord[] = [];
  const dead: EventRecord[] = [];
  const inBatch = new Set<string>();
  let nextDueAt: number | null = null;
  let bytes = BODY_OVERHEAD_BYTES;
  let resend: boolean | undefined;
  let after: string | undefined;
  let scanned = 0;
  const kill = (record: EventRecord, error: string) => {
    if (!write) return;
    const next: EventRecord = { ...record, status: 'dead', error };
    raw(tx, EVENTS).put(next);
    dead.push(next);
  };
  // Read in chunks of at most 250: each chunk is read (and its records deserialised) in a task of its own.
  const want = Math.min(o.batchSize + 16, 250);
  scan: while (scanned < Math.max(1000, o.batchSize * 10)) {
    const chunk = await store.index(BY_STATUS).getAll(statusRange('pending', after), want);
    for (const r of chunk) {
      scanned++;
      after = r.seq;
      const corrupt = recordCorruption(r);
      if (corrupt) {
        kill(r, `corrupted record: ${corrupt}`);
        continue;
      }
      if (r.nextAttemptAt > o.now && !(o.networkBack && r.waitingForNetwork)) {
        nextDueAt = Math.min(nextDueAt ?? Infinity, r.nextAttemptAt);
        continue;
      }
      // A child waits for its parent's answer (track() refuses loops), or goes in the same batch.
      if (r.parentId !== null && r.parentId !== r.externalId && !inBatch.has(r.parentId)) {
        const parent = await store.get(r.parentId);
        if (parent?.status === 'pending') continue;
        if (parent?.status === 'dead') {
          kill(r, `parent ${parent.externalId} was dead-lettered: ${parent.error}`);
          continue;
        }
      }
      if (BODY_OVERHEAD_BYTES + r.bytes > o.maxBytes) {
        if (BODY_OVERHEAD_BYTES + r.bytes > o.maxBatchBytes) kill(r, `${r.bytes} bytes, over maxBatchBytes (${o.maxBatchBytes})`);
        continue;
      }
      if (resend !== undefined && resend !== (r.sentAt !== null)) continue;
      const extra = r.bytes + (batch.length ? 1 : 0); // a comma before every event but the first
      if (bytes + extra > o.maxBytes) break scan;
      bytes += extra;
      resend = r.sentAt !== null;
      batch.push(r);
      inBatch.add(r.externalId);
      if (batch.length >= o.batchSize) break scan;
    }
    if (chunk.length < want) break;
  }
  if (!write) return { batch, dead, nextDueAt };
  await addWaiting(tx, -dead.length);
  if (batch.length > 0) {
    const earliest: Record<string, number> = {};
    for (const r of batch) earliest[r.customerKey] = Math.min(earliest[r.customerKey] ?? Infinity, r.timestampMs);
    const claim: ClaimLease = {
      owner: o.owner,
      leaseUntil: o.now + o.leaseDuration,
      ids: [...inBatch],
      firstSeq: batch[0]!.seq,
      lastSeq: batch[batch.length - 1]!.seq,
      earliest,
    };
    raw(tx, META).put({ key: CLAIM, value: claim });
  } else raw(tx, META).delete(CLAIM);
  return { batch, dead, nextDueAt };
}

export type Settlement =
  | { record: EventRecord; to: 'sent'; heldByServer?: boolean }
  | { record: EventRecord; to: 'dead'; error: string }
  | {
      record: EventRecord;
      to: 'pending';
      nextAttemptAt: number;
      countAttempt: boolean;
      error: string | null;
      waitingForNetwork?: boolean;
      /** The server refused the wire timestamp (nothing stored): the next send carries this one. */
      wireMs?: number;
    };

/**
 * Applies the outcome of one send (an ingest answer, or none) to the events still pending (clear()
 * may have taken some meanwhile), in one transaction with the waiting count and the claim. An
 * event answered `sent` whose server copy a reconcile already mirrored is linked to it at once.
 * Returns the records written.
 */
export function settle(db: BufferDatabase, settlements: Settlement[], now: number, durability: Durability): Promise<EventRecord[]> {
  if (settlements.length === 0) return Promise.resolve([]);
  return inTx(db, [EVENTS, MIRROR, META], durability, 'flush', async (tx) => {
    const seqs = settlements.map((s) => s.record.seq).sort();
    const pending = new Set(
      await tx
        .objectStore(EVENTS)
        .index(BY_STATUS)
        .getAllKeys(IDBKeyRange.bound(['pending', seqs[0]], ['pending', seqs[seqs.length - 1]])),
    );
    const sent = settlements.some((s) => s.to === 'sent');
    const mirrored = sent && (await tx.objectStore(MIRROR).getAllKeys(undefined, 1)).length > 0;
    const written: EventRecord[] = [];
    const slice = slicer(tx);
    for (const s of settlements) {
      const r = s.record;
      if (!pending.delete(r.externalId)) continue;
      await slice(1);
      let next: EventRecord;
      if (s.to === 'sent') {
        next = { ...r, status: 'sent', sentAt: now, error: null, nextAttemptAt: 0 };
        if (s.heldByServer) next.heldByServer = true;
        if (mirrored) next = await linkMirrored(tx, next, now);
      } else if (s.to === 'dead') {
        next = { ...r, status: 'dead', error: s.error };
      } else {
        next = { ...(s.wireMs === undefined ? r : withWireTime(r, s.wireMs)), nextAttemptAt: s.nextAttemptAt, error: s.error };
        next.attempts = r.attempts + (s.countAttempt ? 1 : 0);
        if (s.waitingForNetwork) next.waitingForNetwork = true;
      }
      if (!(s.to === 'pending' && s.waitingForNetwork)) delete next.waitingForNetwork;
      raw(tx, EVENTS).put(next);
      written.push(next);
    }
    await addWaiting(tx, -written.filter((r) => r.status !== 'pending').length);
    const [claim] = await liveClaims(tx.objectStore(META), -Infinity);
    if (claim) {
      const settled = new Set(settlements.map((s) => s.record.externalId));
      const ids = claim.ids.filter((id) => !settled.has(id));
      if (ids.length > 0) raw(tx, META).put({ key: CLAIM, value: { ...claim, ids } });
      else raw(tx, META).delete(CLAIM);
    }
    return written;
  });
}

/** A sent event whose server copy is already mirrored (and linked to no other): confirmed by it. */
async function linkMirrored(tx: Tx, record: EventRecord, now: number): Promise<EventRecord> {
  // By key: a server copy of a just-sent event is rare, and most fingerprints name none.
  let copy: MirrorRecord | undefined;
  for (const id of await tx.objectStore(MIRROR).index(BY_FINGERPRINT).getAllKeys(record.fingerprint)) {
    copy = await tx.objectStore(MIRROR).get(id);
    if (copy?.localExternalId === null) break;
    copy = undefined;
  }
  if (!copy) return record;
  raw(tx, MIRROR).put({ ...copy, localExternalId: record.externalId });
  return confirmedBy(record, copy.id, now);
}

/** The local record once a server copy of it is known. */
export const confirmedBy = (record: EventRecord, serverId: string, now: number): EventRecord => ({
  ...record,
  status: 'confirmed',
  serverId,
  confirmedAt: now,
  nextAttemptAt: 0,
  error: null,
});

/**
 * Bounds `sent` events (kept so a mirror, even one opened later, can confirm them): the oldest
 * beyond `max`, and those sent before `before`, are deleted, at most 1000 per call.
 */
export function pruneSent(db: BufferDatabase, before: number, max: number, durability: Durability): Promise<number> {
  return inTx(db, [EVENTS], durability, 'flush', async (tx) => {
    const index = tx.objectStore(EVENTS).index(BY_STATUS);
    let excess = (await index.count(statusRange('sent'))) - max;
    let removed = 0;
    let cursor = await index.openCursor(statusRange('sent'));
    while (cursor && removed < 1000 && (excess > 0 || (cursor.value.sentAt ?? 0) < before)) {
      cursor.delete();
      removed++;
      excess--;
      cursor = await cursor.continue();
    }
    return removed;
  });
}

// ----- reading ----------------------------------------------------------------------------------
export function countByStatus(db: BufferDatabase, now: number): Promise<Record<EventStatus, number> & { mirrored: number }> {
  return inTx(db, [EVENTS, MIRROR, META], null, 'stats', async (tx) => {
    const index = tx.objectStore(EVENTS).index(BY_STATUS);
    const out = { mirrored: await tx.objectStore(MIRROR).count() } as Record<EventStatus, number> & { mirrored: number };
    for (const s of STATUSES) out[s] = await index.count(statusRange(s));
    for (const c of await liveClaims(tx.objectStore(META), now)) {
      const pending = new Set(await index.getAllKeys(IDBKeyRange.bound(['pending', c.firstSeq], ['pending', c.lastSeq])));
      const claimed = c.ids.filter((id) => pending.has(id)).length;
      out.pending -= claimed;
      out.sending += claimed;
    }
    return out;
  });
}

export function listByStatus(db: BufferDatabase, status: EventStatus, limit: number): Promise<EventRecord[]> {
  return inTx(db, [EVENTS], null, 'read', (tx) => tx.objectStore(EVENTS).index(BY_STATUS).getAll(statusRange(status), limit));
}

export function countWaiting(db: BufferDatabase): Promise<number> {
  return inTx(db, [EVENTS], null, 'read', (tx) => tx.objectStore(EVENTS).index(BY_STATUS).count(statusRange('pending')));
}

// ----- dead letters and clear -------------------------------------------------------------------
/** Dead letters back to pending (`revive`) or deleted, all of them or those named; by cursor. */
export function editDead(db: BufferDatabase, ids: string[] | undefined, revive: boolean, durability: Durability): Promise<number> {
  return inTx(db, [EVENTS, META], durability, 'dead letters', async (tx) => {
    const store = tx.objectStore(EVENTS);
    let count = 0;
    const edit = (r: EventRecord | undefined) => {
      if (r?.status !== 'dead') return;
      count++;
      if (revive) raw(tx, EVENTS).put({ ...r, status: 'pending', attempts: 0, nextAttemptAt: 0, error: null });
      else raw(tx, EVENTS).delete(r.externalId);
    };
    if (ids) for (const id of ids) edit(await store.get(id));
    else for (let c = await store.index(BY_STATUS).openCursor(statusRange('dead')); c; c = await c.continue()) edit(c.value);
    if (revive) await addWaiting(tx, count);
    return count;
  });
}

/**
 * Removes every event, mirrored event and cursor of the customers named by these keys (and the
 * other keys a reconcile saw for the same customer); with none, everything.
 */
export function clearCustomers(db: BufferDatabase, given: string[] | undefined, durability: Durability): Promise<void> {
  return inTx(db, [EVENTS, MIRROR, META], durability, 'clear', async (tx) => {
    if (!given) {
      await tx.objectStore(EVENTS).clear();
      await tx.objectStore(MIRROR).clear();
      // Everything in meta but the flush lease, which another tab may hold right now.
      raw(tx, META).delete(IDBKeyRange.upperBound(LEASE, true));
      raw(tx, META).delete(IDBKeyRange.lowerBound(LEASE, true));
      return;
    }
    const keys = new Set(given);
    for (const key of given) {
      const aliases = (await tx.objectStore(META).get(`alias:${key}`))?.value;
      if (Array.isArray(aliases)) for (const alias of aliases) keys.add(alias as string);
    }
    let waiting = 0;
    for (const key of keys) {
      const range = IDBKeyRange.bound([key, -Infinity], [key, Infinity]);
      for (let c = await tx.objectStore(EVENTS).index(BY_CUSTOMER).openCursor(range); c; c = await c.continue()) {
        if (c.value.status === 'pending') waiting++;
        raw(tx, EVENTS).delete(c.primaryKey);
      }
      for (let c = await tx.objectStore(MIRROR).index(BY_CUSTOMER).openKeyCursor(range); c; c = await c.continue()) raw(tx, MIRROR).delete(c.primaryKey);
      raw(tx, META).delete(`cursor:${key}`);
      raw(tx, META).delete(`alias:${key}`);
    }
    await addWaiting(tx, -waiting);
  });
}

/** The oldest waiting events as storage holds them now (at most `limit`): what a page-exit send may carry. */
export const waitingSnapshot = (db: BufferDatabase, limit: number): Promise<EventRecord[]> => listByStatus(db, 'pending', limit);

/** A full disk: the oldest half of the mirror (which reconcile can pull again) makes room. */
export function relieveQuota(db: BufferDatabase, durability: Durability): Promise<number> {
  return inTx(db, [MIRROR], durability, 'track', async (tx) => {
    let left = Math.ceil((await tx.objectStore(MIRROR).count()) / 2);
    const removed = left;
    for (let c = await tx.objectStore(MIRROR).index(BY_TIME).openKeyCursor(); c && left > 0; c = await c.continue(), left--) {
      raw(tx, MIRROR).delete(c.primaryKey);
    }
    return removed;
  });
}

// ----- the flush lease (where Web Locks are missing) ---------------------------------------------

/** Takes or renews the cross-tab flush lease for `owner` when free, expired or already its own. */
export function takeLease(db: BufferDatabase, owner: string, now: number, duration: number): Promise<boolean> {
  return inTx(db, [META], 'strict', 'flush', async (tx) => {
    const current = (await tx.objectStore(META).get(LEASE))?.value as { owner: string; until: number } | undefined;
    const free = !current || current.owner === owner || !(current.until > now);
    if (free) raw(tx, META).put({ key: LEASE, value: { owner, until: now + duration } });
    return free;
  });
}

export function releaseLease(db: BufferDatabase, owner: string): Promise<void> {
  return inTx(db, [META], 'strict', 'flush', async (tx) => {
    if (((await tx.objectStore(META).get(LEASE))?.value as { owner?: string } | undefined)?.owner === owner) raw(tx, META).delete(LEASE);
  });
}
