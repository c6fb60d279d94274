import { QueueFullError } from '../errors.js';
import { storageError, unwrap, type BufferDatabase } from './db.js';
import { BY_CUSTOMER, BY_STATUS, EVENTS, MIRROR, META, STATUSES, type EventRecord, type EventStatus } from './schema.js';
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

/** Resolves on the transaction's `complete`; rejects with its error when it aborts. */
function transactionDone(tx: IDBTransaction): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new DOMException('The transaction was aborted.', 'AbortError'));
  });
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
 * The queue-size check, without counting the whole backlog on every write (an index count is O(n)
 * in Chromium) and without any read in a lone track()'s transaction (a read cost ~12% of a strict
 * one-event write in Chromium): issue 6. Two parts.
 *
 * - A cached bound. Per connection, an upper bound of the waiting (pending + sending) count plus
 *   the slots the OTHER connections had reserved when it was counted, valid while the `meta`
 *   record WAITING_TOKEN is unchanged. Every write that can make the waiting count grow outside a
 *   reservation (a checked append, reviveDead, a resend of sent events) and every new reservation
 *   stores a new random token in the same transaction (`markWaitingGrew`), in any tab; moves out
 *   of waiting only make the bound looser (or tighter, where this connection sees them).
 * - Reservations. A checked append grants its connection up to RESERVE_MAX slots for RESERVE_MS
 *   (at most 1/8 of the room left; none near the limit), stored in `meta` as `reserve:<id>`. While
 *   it holds slots, the connection writes new events in a transaction of the `events` store alone:
 *   no token read, no token write. A checked append counts the other connections' live
 *   reservations as taken, so the queue never passes maxQueueSize through track(); the price is
 *   that near the limit another tab's unused slots are refused for at most RESERVE_MS.
 */
const WAITING_TOKEN = 'waiting-token';
const RESERVE_PREFIX = 'reserve:';
/** Most slots one connection holds at a time. */
export const RESERVE_MAX = 1000;
/** How long a reservation lasts (a crashed tab's slots come back after it). */
export const RESERVE_MS = 2000;
/** Fewer slots than this are not worth a reservation: every write is checked then. */
const RESERVE_MIN = 16;

interface WaitingBound {
  /** waiting (+ the other connections' possible writes) <= upperBound while the stored token equals `token`. */
  upperBound: number;
  token: unknown;
}

interface Reservation {
  left: number;
  until: number;
}

/** What one connection knows of the queue size: its bound, its reservation and that reservation's key. */
interface ConnectionState {
  /** The `meta` key of this connection's reservation. */
  readonly reserveKey: string;
  bound?: WaitingBound | undefined;
  reservation?: Reservation | undefined;
}

const connections = new WeakMap<object, ConnectionState>();

function stateOf(db: BufferDatabase): ConnectionState {
  let state = connections.get(db);
  if (!state) {
    state = { reserveKey: `${RESERVE_PREFIX}${newToken()}` };
    connections.set(db, state);
  }
  return state;
}

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
  const bound = connections.get(db)?.bound;
  if (bound && count > 0) bound.upperBound = Math.max(0, bound.upperBound - count);
}

/**
 * A flush's lease on its batch (issue 6: flush speed). A claim writes ONE `meta` record,
 * `claim:<owner>:<first seq>`, naming the events it took, instead of rewriting each event as `sending`: every
 * event in a batch was written twice per flush (claimed, then sent), and IndexedDB writes are what
 * bounds a flush. The events stay `pending` in the store; an event named by a live claim (until
 * `leaseUntil`) is `sending` to everyone who reads it (stats, query, other claims). When the lease
 * runs out (its holder died) the events are simply pending again: nothing to undo. Settling removes
 * the settled events from the claim, and the last one removes the claim.
 *
 * Every reader that reports or ranks an event by its status must overlay the live claims
 * (`liveClaims` + `asShown`, or `claimedPending` for counts): countByStatus, readMerged, applyPage's
 * matcher, earliestUnconfirmed, appendChecked. A reader that forgets treats an event on the wire as
 * merely waiting (the matcher did, and confirmed the wrong twin).
 */
export interface ClaimLease {
  owner: string;
  leaseUntil: number;
  /** The events claimed, in creation order. */
  ids: string[];
  /** seq of the first and last of them: the `[status, seq]` range that holds them while pending. */
  firstSeq: string;
  lastSeq: string;
  /** Per customer key, the earliest timestamp (ms) among them (reconcile's look-back). */
  earliest: Record<string, number>;
}

const CLAIM_PREFIX = 'claim:';

function claimKey(owner: string, firstSeq: string): string {
  return `${CLAIM_PREFIX}${owner}:${firstSeq}`;
}

/** Every `meta` key that starts with `prefix`. */
function prefixRange(prefix: string): IDBKeyRange {
  return IDBKeyRange.bound(prefix, `${prefix}\uffff`);
}

/** Every claim, or one owner's. */
function claimRange(owner?: string): IDBKeyRange {
  return prefixRange(owner === undefined ? CLAIM_PREFIX : `${CLAIM_PREFIX}${owner}:`);
}

type MetaStoreLike = { getAll(range: IDBKeyRange): Promise<{ key: string; value: unknown }[]> };

/** The claims whose lease still runs at `now` (every holder's). */
export async function liveClaims(meta: MetaStoreLike, now: number): Promise<ClaimLease[]> {
  return (await meta.getAll(claimRange())).map((r) => r.value as ClaimLease).filter((c) => isLive(c, now));
}

/** Every event these claims name. */
export function heldIds(claims: readonly ClaimLease[]): Set<string> {
  const held = new Set<string>();
  for (const claim of claims) for (const id of claim.ids) held.add(id);
  return held;
}

/** The record as readers see it: `sending` when it is pending and a live claim holds it. */
export function asShown(record: EventRecord, held: ReadonlySet<string>): EventRecord {
  return record.status === 'pending' && held.has(record.externalId) ? { ...record, status: 'sending' } : record;
}

function isLive(claim: ClaimLease | undefined, now: number): claim is ClaimLease {
  return !!claim && claim.leaseUntil > now && Array.isArray(claim.ids);
}

type StatusIndexLike = { getAllKeys(range: IDBKeyRange): Promise<string[]> };

/** Of the events these live claims name, those still pending (not sent, cleared nor confirmed since): they are `sending`. */
export async function claimedPending(index: StatusIndexLike, claims: readonly ClaimLease[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const claim of claims) {
    const pending = new Set(await index.getAllKeys(IDBKeyRange.bound(['pending', claim.firstSeq], ['pending', claim.lastSeq])));
    for (const id of claim.ids) if (pending.has(id)) out.add(id);
  }
  return out;
}

/**
 * Writes several groups (one per track()/trackMany() call) in ONE transaction. A group is all or
 * nothing: a group that would pass maxQueueSize fails alone with QueueFullError. An event whose
 * externalId is already stored is not written again: the stored record is returned (idempotent).
 * Resolves after the transaction's `complete`, i.e. once the records are durable.
 *
 * Speed (issue 6): generated UUIDv7 ids are new by construction, so groups of them that fit in
 * this connection's reservation are written with puts alone (see RESERVE_MAX). Otherwise only
 * externalIds the caller chose (externalId !== seq) can already be stored; they are looked up all
 * at once, with the token and the reservations, in one round trip, and the waiting count is
 * counted exactly only when the cached bound could reach maxQueueSize. `waiting` in the result is
 * exact or an upper bound.
 */
export async function appendGroups(
  db: BufferDatabase,
  groups: AppendGroup[],
  options: { maxQueueSize: number; durability: Durability; knownWaiting?: number; now?: number },
): Promise<{ outcomes: AppendOutcome[]; waiting: number }> {
  const now = options.now ?? Date.now();
  const state = stateOf(db);
  let total = 0;
  // externalIds the caller chose (externalId !== seq): only those can already be stored.
  const chosen = new Set<string>();
  for (const group of groups) {
    total += group.records.length;
    for (const record of group.records) if (record.externalId !== record.seq) chosen.add(record.externalId);
  }
  const reservation = state.reservation;
  if (chosen.size === 0 && options.knownWaiting === undefined && reservation && reservation.left >= total && now < reservation.until) {
    return appendReserved(db, groups, state, reservation, total, options.durability);
  }
  return appendChecked(db, groups, state, chosen, options, now);
}

/** New events within this connection's reservation: one transaction of the `events` store, puts only. */
async function appendReserved(
  db: BufferDatabase,
  groups: AppendGroup[],
  state: ConnectionState,
  reservation: Reservation,
  total: number,
  durability: Durability,
): Promise<{ outcomes: AppendOutcome[]; waiting: number }> {
  // Taken even if the write fails: the bound only gets looser.
  reservation.left -= total;
  try {
    // A bare IDBTransaction: idb's wrapper (a Proxy, and a done-promise with three listeners) cost
    // a measurable share of a lone track() in Chromium.
    const tx = (unwrap(db) as unknown as IDBDatabase).transaction(EVENTS, 'readwrite', { durability });
    const done = transactionDone(tx);
    done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const store = tx.objectStore(EVENTS);
    try {
      for (const group of groups) for (const record of group.records) store.put(record);
    } catch (error) {
      // A synchronous throw (DataCloneError...) does not abort the transaction by itself.
      tx.abort();
      throw error;
    }
    await done;
  } catch (error) {
    throw storageError('track', error);
  }
  // The other connections count this reservation as taken: the bound stays valid, ours grew.
  const bound = state.bound;
  if (bound) bound.upperBound += total;
  return { outcomes: groups.map((group) => ({ ok: true, records: group.records })), waiting: bound?.upperBound ?? total };
}

/** Every other append: reads what it must, checks the limit, and grants this connection a new reservation. */
async function appendChecked(
  db: BufferDatabase,
  groups: AppendGroup[],
  state: ConnectionState,
  chosen: ReadonlySet<string>,
  options: { maxQueueSize: number; durability: Durability; knownWaiting?: number },
  now: number,
): Promise<{ outcomes: AppendOutcome[]; waiting: number }> {
  const outcomes: AppendOutcome[] = [];
  let waiting = 0;
  const bound = state.bound;
  const id = state.reserveKey;
  // Both are set again only when this transaction commits; our old reservation ends here.
  state.bound = undefined;
  state.reservation = undefined;
  let next: WaitingBound | undefined;
  let granted: Reservation | undefined;
  try {
    const tx = db.transaction([EVENTS, META], 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const store = tx.objectStore(EVENTS);
    const rawStore = unwrap(store) as unknown as IDBObjectStore;
    const rawMeta = unwrap(tx.objectStore(META)) as unknown as IDBObjectStore;
    const chosenIds = [...chosen];
    const [tokenRecord, reserved, ...found] = await Promise.all([
      tx.objectStore(META).get(WAITING_TOKEN),
      tx.objectStore(META).getAll(prefixRange(RESERVE_PREFIX)),
      ...chosenIds.map((externalId) => store.get(externalId)),
    ]);
    // Stored records by externalId: those found, then the fresh ones of earlier groups of this transaction.
    const known = new Map<string, EventRecord>();
    chosenIds.forEach((externalId, i) => {
      const record = found[i];
      if (record) known.set(externalId, record);
    });
    // An event already stored and on the wire (pending, named by a live claim) is returned as
    // `sending`, as stats() and query() show it.
    if ([...known.values()].some((r) => r.status === 'pending')) {
      const held = heldIds(await liveClaims(tx.objectStore(META), now));
      for (const [externalId, record] of known) known.set(externalId, asShown(record, held));
    }
    // The token, and the bound its writer left with it (a checked append stores `{ id, bound }`:
    // its waiting count plus every slot reserved then, its own included), so a new connection
    // need not count a long backlog; markWaitingGrew stores a bare token, which forces a count.
    const stored = tokenRecord?.value as { id?: unknown; bound?: unknown } | string | undefined;
    const token = typeof stored === 'object' && stored !== null ? stored.id : stored;
    const storedBound = typeof stored === 'object' && stored !== null && typeof stored.bound === 'number' ? stored.bound : undefined;
    // What the other connections may still write under their live reservations.
    let others = 0;
    for (const r of reserved) {
      const value = r.value as { slots?: unknown; until?: unknown } | null;
      if (r.key !== id && value && typeof value.slots === 'number' && typeof value.until === 'number' && value.until > now) others += value.slots;
    }
    const countExactly = async () => (await store.index(BY_STATUS).count(waitingRange())) + others;
    let exact: boolean;
    if (options.knownWaiting !== undefined) {
      waiting = options.knownWaiting + others;
      exact = true;
    } else if (bound && bound.token === token) {
      waiting = bound.upperBound;
      exact = false;
    } else if (storedBound !== undefined) {
      waiting = storedBound;
      exact = false;
    } else {
      waiting = await countExactly();
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
        waiting = await countExactly();
        exact = true;
      }
      if (waiting + fresh.length > options.maxQueueSize) {
        outcomes.push({ ok: false, error: new QueueFullError(Math.min(waiting, options.maxQueueSize), fresh.length, options.maxQueueSize) });
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
    // The next writes of this connection go without a check while they fit in a reservation.
    const slots = Math.min(RESERVE_MAX, Math.floor((options.maxQueueSize - waiting) / 8));
    if (slots >= RESERVE_MIN) {
      granted = { left: slots, until: now + RESERVE_MS };
      rawMeta.put({ key: id, value: { slots, until: granted.until } });
    } else if (reserved.some((r) => r.key === id)) {
      rawMeta.delete(id);
    }
    if (added > 0 || granted) {
      const grown = newToken();
      rawMeta.put({ key: WAITING_TOKEN, value: { id: grown, bound: waiting + (granted?.left ?? 0) } });
      next = { upperBound: waiting, token: grown };
    } else {
      next = { upperBound: waiting, token };
    }
    await tx.done;
  } catch (error) {
    throw storageError('track', error);
  }
  state.bound = next;
  state.reservation = granted;
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
  /**
   * The configured maxBatchBytes when `maxBatchBytes` is a smaller limit of this send only (a
   * keepalive body): an event that fits the configured limit but not this one waits for a normal
   * flush instead of being dead-lettered as one that can never be sent.
   */
  configuredMaxBatchBytes?: number;
  /** The network just came back: events that were backing off only for want of it are due now. */
  networkBack?: boolean;
  /**
   * Look for events an earlier version left `sending` under an expired per-event lease (default
   * true). A flush does it on its first claim only.
   */
  reclaim?: boolean;
}

export interface ClaimResult {
  /** The batch, leased by our claim (stored `pending`, `sending` to readers), in creation order, parents before children. */
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
 * In one transaction: expired claims are dropped (their events are pending again); then up to
 * `batchSize` due `pending` events that no live claim holds are read in creation order in a few
 * getAll() chunks (never the whole queue), bounded by `maxBatchBytes`, holding back a child whose
 * parent is still waiting and dead-lettering a child whose parent is dead; the batch is leased by
 * one `claim:<owner>` record (see ClaimLease). The events themselves are not rewritten.
 */
export async function claimBatch(db: BufferDatabase, options: ClaimOptions): Promise<ClaimResult> {
  const { now, batchSize, maxBatchBytes, leaseDuration, owner } = options;
  const scanLimit = options.scanLimit ?? Math.max(1000, batchSize * 10);
  const result: ClaimResult = { batch: [], dead: [], reclaimed: 0, nextDueAt: null, oversized: [], corrupted: [] };
  try {
    const tx = db.transaction([EVENTS, META], 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const store = tx.objectStore(EVENTS);
    const meta = tx.objectStore(META);
    const index = store.index(BY_STATUS);
    // Reads in a few getAll() round trips and writes with raw puts that nothing waits for (a failed
    // one aborts the transaction, which tx.done reports): a cursor step per record cost two serial
    // round trips per event in Chromium (issue 6: flush >= 5,000 events/s).
    const rawStore = unwrap(store) as unknown as IDBObjectStore;

    // Records that an earlier version left `sending` under a per-event lease. Looked for on a
    // flush's first claim only.
    for (const record of options.reclaim === false ? [] : await index.getAll(statusRange('sending'))) {
      // `!(… > now)`: a record without a lease time (corrupted) is reclaimed too, then quarantined below.
      if (!(record.leaseUntil > now)) {
        rawStore.put({ ...record, status: 'pending', leaseUntil: 0, leaseOwner: null });
        result.reclaimed++;
      }
    }
    // Live claims (any holder's, ours too: a batch given up on close() stays leased like any
    // other) are skipped; expired ones (a crashed holder's) are dropped: their events are pending.
    const held = new Set<string>();
    for (const { key, value } of await meta.getAll(claimRange())) {
      const claim = value as ClaimLease | undefined;
      if (isLive(claim, now)) {
        for (const id of claim.ids) held.add(id);
      } else {
        void meta.delete(key).catch(() => undefined);
        const ids = (value as { ids?: unknown } | undefined)?.ids;
        result.reclaimed += Array.isArray(ids) ? ids.length : 0;
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
      const want = Math.min(batchSize - result.batch.length + Math.min(16, Math.ceil(batchSize / 10)) + held.size, scanLimit - scanned);
      const range = after === undefined ? statusRange('pending') : IDBKeyRange.bound(['pending', after], ['pending', HIGH], true, false);
      const chunk = await index.getAll(range, want);
      for (const record of chunk) {
        if (result.batch.length >= batchSize || scanned >= scanLimit) {
          full = true;
          break;
        }
        scanned++;
        after = record.seq;
        if (held.has(record.externalId)) continue;
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
          const parent = record.parentId === record.externalId ? undefined : await store.get(record.parentId);
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
          // Too large for this send only (keepalive): it stays pending for a normal flush.
          if (BODY_OVERHEAD_BYTES + record.bytes <= (options.configuredMaxBatchBytes ?? maxBatchBytes)) continue;
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
        result.batch.push(record);
        inBatch.add(record.externalId);
      }
      if (chunk.length < want) break;
    }
    if (result.batch.length > 0) {
      const earliest: Record<string, number> = {};
      for (const r of result.batch) earliest[r.customerKey] = Math.min(earliest[r.customerKey] ?? Infinity, r.timestampMs);
      const lease: ClaimLease = {
        owner,
        leaseUntil: now + leaseDuration,
        ids: result.batch.map((r) => r.externalId),
        firstSeq: result.batch[0]!.seq,
        lastSeq: result.batch[result.batch.length - 1]!.seq,
        earliest,
      };
      void meta.put({ key: claimKey(owner, lease.firstSeq), value: lease }).catch(() => undefined);
    }
    await tx.done;
  } catch (error) {
    throw storageError('flush (claim)', error);
  }
  noteWaitingShrank(db, result.dead.length + result.oversized.length + result.corrupted.length);
  return result;
}

export type Settlement =
  /** `record`: the claimed copy; while the event is still pending it is written from it, unread. */
  | { externalId: string; to: 'sent'; heldByServer?: boolean; fingerprint?: string; record?: EventRecord }
  | { externalId: string; to: 'dead'; error: string }
  | { externalId: string; to: 'pending'; nextAttemptAt: number; countAttempt: boolean; error: string | null; waitingForNetwork?: boolean };

/**
 * Applies the outcome of one send in one transaction, and takes the settled events out of the
 * owner's claim (the claim goes when it names none). An event settles only while it is still ours
 * (pending and named by our claim) — except `sent`, which is true whoever holds it now, since the
 * server has the event. Returns the records as written.
 */
export async function settle(
  db: BufferDatabase,
  settlements: Settlement[],
  options: { now: number; owner: string; durability: Durability },
): Promise<EventRecord[]> {
  const written: EventRecord[] = [];
  let leftWaiting = 0;
  try {
    const tx = db.transaction([EVENTS, META], 'readwrite', { durability: options.durability });
    tx.done.catch(() => undefined); // awaited below; a failure is reported once, by that await
    const store = tx.objectStore(EVENTS);
    const meta = tx.objectStore(META);
    const rawStore = unwrap(store) as unknown as IDBObjectStore;
    // This owner's claims (one, unless an earlier batch was given up): which events are still ours.
    const claims = (await meta.getAll(claimRange(options.owner))).filter((r) => Array.isArray((r.value as ClaimLease | undefined)?.ids));
    const ours = new Set<string>();
    for (const { value } of claims) for (const id of (value as ClaimLease).ids) ours.add(id);
    // Speed (issue 6): a batch the server took settles without reading its records back one by one.
    // One key-only read of the pending range the batch spans says which are still pending (not
    // confirmed by a reconcile nor removed by clear() meanwhile): those are written from the
    // claimed copy, the others are read.
    let firstSeq: string | undefined;
    let lastSeq: string | undefined;
    for (const s of settlements) {
      if (s.to !== 'sent' || !s.record) continue;
      if (firstSeq === undefined || s.record.seq < firstSeq) firstSeq = s.record.seq;
      if (lastSeq === undefined || s.record.seq > lastSeq) lastSeq = s.record.seq;
    }
    const fromClaim =
      firstSeq !== undefined && lastSeq !== undefined
        ? new Set(await store.index(BY_STATUS).getAllKeys(IDBKeyRange.bound(['pending', firstSeq], ['pending', lastSeq])))
        : new Set<string>();
    // Only the others are read (a promise per event of a sent batch was garbage for nothing).
    const records: (EventRecord | undefined)[] = settlements.map((s) =>
      s.to === 'sent' && s.record && s.record.status === 'pending' && fromClaim.has(s.externalId) ? s.record : undefined,
    );
    const toRead = settlements.flatMap((_, i) => (records[i] === undefined ? [i] : []));
    const read = await Promise.all(toRead.map((i) => store.get(settlements[i]!.externalId)));
    toRead.forEach((i, k) => (records[i] = read[k]));
    settlements.forEach((s, i) => {
      const record = records[i];
      const mine = ours.delete(s.externalId);
      if (!record) return;
      const before = record.status; // `sent` updates the record in place
      let next: EventRecord | undefined;
      if (s.to === 'sent') {
        if (record.status === 'sent' || record.status === 'confirmed') return;
        // In place: the record is this call's own (read just now, or the flusher's claimed copy,
        // which it does not use again), and a copy per event only fed the garbage collector.
        next = Object.assign(record, { status: 'sent', sentAt: options.now, leaseUntil: 0, leaseOwner: null, error: null, nextAttemptAt: 0 } as const);
        if (s.heldByServer) next.heldByServer = true;
        // Sent with a clamped timestamp: the server holds that one, so match on it.
        if (s.fingerprint !== undefined) next.fingerprint = s.fingerprint;
      } else {
        if (record.status !== 'pending' || !mine) return;
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
      if ((before === 'pending' || before === 'sending') && next.status !== 'pending') leftWaiting++;
      written.push(next);
    });
    // Settled events leave their claim; a claim that names none is gone.
    for (const { key, value } of claims) {
      const claim = value as ClaimLease;
      const left = claim.ids.filter((id) => ours.has(id));
      if (left.length === claim.ids.length) continue;
      if (left.length === 0) void meta.delete(key).catch(() => undefined);
      else void meta.put({ key, value: { ...claim, ids: left } }).catch(() => undefined);
    }
    await tx.done;
  } catch (error) {
    throw storageError('flush (settle)', error);
  }
  noteWaitingShrank(db, leftWaiting);
  return written;
}

/**
 * Counts per status (one index count each, no record read). Events that a live claim holds are
 * counted `sending`, not `pending` (see ClaimLease).
 */
export async function countByStatus(db: BufferDatabase, now: number): Promise<Record<EventStatus, number> & { mirrored: number }> {
  try {
    const tx = db.transaction([EVENTS, MIRROR, META], 'readonly');
    const index = tx.objectStore(EVENTS).index(BY_STATUS);
    const counts = await Promise.all(STATUSES.map((s) => index.count(statusRange(s))));
    const mirrored = await tx.objectStore(MIRROR).count();
    const claimed = (await claimedPending(index, await liveClaims(tx.objectStore(META), now))).size;
    const out = { mirrored } as Record<EventStatus, number> & { mirrored: number };
    STATUSES.forEach((s, i) => (out[s] = counts[i]!));
    out.pending -= claimed;
    out.sending += claimed;
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
