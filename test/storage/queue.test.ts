import { afterEach, describe, expect, it } from 'vitest';
import { EventValidationError, QueueFullError } from '../../src/errors.js';
import { uuidv7 } from '../../src/ids.js';
import { openBufferDb, type BufferDatabase } from '../../src/storage/db.js';
import {
  append,
  asShown,
  claimBatch,
  clearCustomers,
  countByStatus,
  editDead,
  heldIds,
  liveClaims,
  pruneSent,
  releaseLease,
  settle,
  takeLease,
  type ClaimLease,
  type ClaimOptions,
  type InputFailure,
  type Settlement,
} from '../../src/storage/queue.js';
import { EVENTS, META, MIRROR, type EventRecord, type MirrorRecord } from '../../src/storage/schema.js';
import { BODY_OVERHEAD_BYTES, newRecord } from '../../src/storage/serialize.js';
import { countCalls } from '../helpers/count-calls.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';

const T = Date.now();

type Extra = { externalCustomerId?: string; customerId?: string; externalId?: string; parentId?: string; metadata?: Record<string, unknown>; timestamp?: Date };
const rec = (n: number, extra: Extra = {}): EventRecord =>
  newRecord({ name: 'api.call', externalCustomerId: 'user_1', metadata: { n }, ...extra } as Parameters<typeof newRecord>[0], uuidv7(T), T);
const recs = (count: number, from = 0) => Array.from({ length: count }, (_, i) => rec(from + i));
const ids = (rs: readonly EventRecord[]) => rs.map((r) => r.externalId);

const open = () => openBufferDb(freshIndexedDB(), uniqueDbName());
const refuse = (_: unknown, failures: InputFailure[]) => new EventValidationError(failures);
const add = (db: BufferDatabase, groups: EventRecord[][], maxQueueSize = 100, now = T) => append(db, groups, (g) => g, refuse, maxQueueSize, 'strict', now);
const opts = (o: Partial<ClaimOptions> = {}): ClaimOptions => ({
  owner: 'tab-a',
  now: T,
  leaseDuration: 30_000,
  batchSize: 100,
  maxBytes: 1_000_000,
  maxBatchBytes: 1_000_000,
  durability: 'strict',
  ...o,
});
const sent = (rs: readonly EventRecord[]): Settlement[] => rs.map((record) => ({ record, to: 'sent' }));
const claimRecord = async (db: BufferDatabase) => (await db.get(META, 'claim'))?.value as ClaimLease | undefined;
const pendingCount = async (db: BufferDatabase) => (await db.getAllFromIndex(EVENTS, 'byStatus', IDBKeyRange.bound(['pending', ''], ['pending', []]))).length;
/** Another writer (clear(), a revive, a reconcile's resend) deleted the waiting counter. */
const dropCounter = (db: BufferDatabase) => db.delete(META, 'waiting');

/**
 * Counts records IndexedDB hands out (each cursor step, each getAll item) while installed. Cursor
 * steps are counted on the request's success events: idb recognises IDBCursor.continue by
 * identity, so that method stays untouched.
 */
function countReads() {
  const patched: [object, string, (...args: unknown[]) => IDBRequest][] = [];
  const counter = { reads: 0 };
  for (const proto of [IDBIndex.prototype, IDBObjectStore.prototype] as unknown as Record<string, unknown>[]) {
    for (const method of ['getAll', 'openCursor']) {
      const original = proto[method] as (...args: unknown[]) => IDBRequest;
      patched.push([proto, method, original]);
      proto[method] = function (this: unknown, ...args: unknown[]) {
        const request = original.apply(this, args);
        request.addEventListener('success', () => {
          const r = request.result as unknown;
          counter.reads += Array.isArray(r) ? r.length : r ? 1 : 0;
        });
        return request;
      };
    }
  }
  restore = () => {
    for (const [proto, method, original] of patched) (proto as Record<string, unknown>)[method] = original;
  };
  return counter;
}
let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

describe('claimBatch', () => {
  it('claims one batch of a 5,000-event queue reading about batchSize records, not the whole queue', async () => {
    const db = await open();
    await append(db, [recs(5000)], (g) => g, refuse, 10_000, 'relaxed', T);
    const counter = countReads();
    const { batch } = await claimBatch(db, opts());
    restore!();
    expect(batch).toHaveLength(100);
    expect(counter.reads).toBeGreaterThanOrEqual(100);
    expect(counter.reads).toBeLessThanOrEqual(120);
    expect(await countByStatus(db, T)).toMatchObject({ pending: 4900, sending: 100 });
    db.close();
  });

  it('claims the oldest pending events in creation order, names them in the one claim record, and shows them as sending while it lives', async () => {
    const db = await open();
    // Keys in reverse alphabetical order, stored in reverse: only creation order (seq) gives all[0..2].
    const all = [0, 1, 2, 3, 4].map((n) =>
      rec(n, { externalId: `order-${9 - n}`, externalCustomerId: n % 2 ? 'user_2' : 'user_1', timestamp: new Date(T - 1000 * (n + 1)) }),
    );
    // Older events that are no longer waiting are not claimed.
    const older = [
      { ...rec(10), status: 'sent' as const, sentAt: T },
      { ...rec(11), status: 'dead' as const, error: 'refused' },
    ];
    for (const r of older) await db.put(EVENTS, { ...r, seq: `0${r.seq.slice(1)}` });
    await add(db, [
      [all[4]!, all[3]!],
      [all[2]!, all[1]!, all[0]!],
    ]);

    const { batch } = await claimBatch(db, opts({ batchSize: 3 }));
    expect(ids(batch)).toEqual(['order-9', 'order-8', 'order-7']);
    expect(await claimRecord(db)).toEqual({
      owner: 'tab-a',
      leaseUntil: T + 30_000,
      ids: ['order-9', 'order-8', 'order-7'],
      firstSeq: all[0]!.seq,
      lastSeq: all[2]!.seq,
      earliest: { 'ext:user_1': T - 3000, 'ext:user_2': T - 2000 },
    });
    // The events are not rewritten: stored pending, shown sending.
    const stored = (await db.get(EVENTS, 'order-9'))!;
    expect(stored.status).toBe('pending');
    const meta = { get: (key: string) => db.get(META, key) };
    expect(asShown(stored, heldIds(await liveClaims(meta, T))).status).toBe('sending');
    expect(await countByStatus(db, T)).toMatchObject({ pending: 2, sending: 3, sent: 1, dead: 1 });
    // Once the lease has run out they read as pending again, with nothing to undo.
    expect(await liveClaims(meta, T + 30_000)).toEqual([]);
    expect(await countByStatus(db, T + 30_000)).toMatchObject({ pending: 5, sending: 0 });
    db.close();
  });

  it("a later claim by any owner replaces the claim and takes the same events again at once (a dead holder's batch)", async () => {
    const db = await open();
    const all = recs(4);
    await add(db, [all]);
    const first = await claimBatch(db, opts({ batchSize: 2 }));
    // tab-a died holding a live lease; tab-b holds the flush lock now and does not wait for it.
    const second = await claimBatch(db, opts({ batchSize: 2, owner: 'tab-b', now: T + 1 }));
    expect(ids(first.batch)).toEqual(ids(all.slice(0, 2)));
    expect(ids(second.batch)).toEqual(ids(all.slice(0, 2)));
    expect(await claimRecord(db)).toMatchObject({ owner: 'tab-b', leaseUntil: T + 30_001, ids: ids(all.slice(0, 2)) });
    expect((await db.getAllKeys(META)).filter((k) => String(k).startsWith('claim'))).toEqual(['claim']);
    expect(await countByStatus(db, T + 1)).toMatchObject({ pending: 2, sending: 2 });
    db.close();
  });

  it('leaves pending an event too large for a keepalive body but not for maxBatchBytes, and dead-letters one that can never fit', async () => {
    const db = await open();
    // ~75 KB on the wire: over a keepalive body (60,000 B), under the configured 1,000,000 B.
    const big = rec(1, { metadata: Object.fromEntries(Array.from({ length: 150 }, (_, k) => [`k${k}`, 'x'.repeat(480)])) });
    const [small1, small2] = [rec(0), rec(2)];
    await add(db, [[small1!, big, small2!]]);
    expect(big.bytes).toBeGreaterThan(60_000);
    const keepalive = await claimBatch(db, opts({ maxBytes: 60_000, maxBatchBytes: 1_000_000 }));
    expect(ids(keepalive.batch)).toEqual(ids([small1!, small2!]));
    expect(keepalive.dead).toEqual([]);
    expect((await db.get(EVENTS, big.externalId))?.status).toBe('pending');
    // A flush whose own limit is the configured one: it can never fit, so it is set aside with a reason.
    const plain = await claimBatch(db, opts({ maxBytes: 60_000, maxBatchBytes: 60_000 }));
    expect(ids(plain.dead)).toEqual([big.externalId]);
    expect(await db.get(EVENTS, big.externalId)).toMatchObject({ status: 'dead', error: expect.stringContaining('maxBatchBytes') });
    db.close();
  });

  it('stops a batch at the byte limit, in order', async () => {
    const db = await open();
    const all = recs(5); // metadata {n: 0..4}: the same size each
    const b = all[0]!.bytes;
    await add(db, [all]);
    const { batch } = await claimBatch(db, opts({ maxBytes: BODY_OVERHEAD_BYTES + 3 * (b + 1) + 5 }));
    expect(ids(batch)).toEqual(ids(all.slice(0, 3)));
    db.close();
  });

  it('sends a batch whose body is exactly maxBytes whole, and an event of exactly maxBatchBytes instead of stalling the queue behind it', async () => {
    const db = await open();
    const all = recs(3); // metadata {n: 0..2}: the same size each
    const b = all[0]!.bytes;
    await add(db, [all]);
    // {"events":[e1,e2,e3]}: the overhead, three events and two commas.
    const exact = await claimBatch(db, opts({ maxBytes: BODY_OVERHEAD_BYTES + 3 * b + 2 }));
    expect(ids(exact.batch)).toEqual(ids(all));
    await settle(db, sent(exact.batch), T, 'strict');

    const max = 2000;
    const base = rec(10, { metadata: { pad: '' } }).bytes;
    const full = rec(11, { metadata: { pad: 'x'.repeat(max - BODY_OVERHEAD_BYTES - base) } });
    expect(BODY_OVERHEAD_BYTES + full.bytes).toBe(max); // `{"events":[` + the event + `]}`: exactly the limit
    const behind = rec(12);
    await add(db, [[full, behind]]);
    const first = await claimBatch(db, opts({ maxBytes: max, maxBatchBytes: max }));
    expect(ids(first.batch)).toEqual([full.externalId]);
    await settle(db, sent(first.batch), T, 'strict');
    expect(ids((await claimBatch(db, opts({ maxBytes: max, maxBatchBytes: max }))).batch)).toEqual([behind.externalId]);
    db.close();
  });

  it('keeps the waiting count exact when its dead letters are set aside after another writer deleted the counter', async () => {
    const db = await open();
    await add(db, [[...recs(3), { ...rec(3), name: '' }]], 4);
    await dropCounter(db);
    expect((await claimBatch(db, opts())).dead).toHaveLength(1);
    // Three wait of 4: one more fits, two do not.
    expect((await add(db, [recs(2, 10)], 4)).results[0]).toBeInstanceOf(QueueFullError);
    expect((await add(db, [recs(1, 20)], 4)).results[0]).toHaveLength(1);
    expect(await pendingCount(db)).toBe(4);
    db.close();
  });

  it('never mixes first sends and resends in one batch', async () => {
    const db = await open();
    const resent = { ...rec(0), sentAt: T - 700_000 }; // sent before, returned to waiting by a reconcile
    const fresh = [rec(1), rec(2)];
    const resentLater = { ...rec(3), sentAt: T - 700_000 };
    await add(db, [[resent, ...fresh, resentLater]]);
    const first = await claimBatch(db, opts());
    expect(ids(first.batch)).toEqual(ids([resent, resentLater]));
    await settle(db, sent(first.batch), T, 'strict');
    const second = await claimBatch(db, opts());
    expect(ids(second.batch)).toEqual(ids(fresh));
    db.close();
  });

  it('dead-letters corrupted records with the reason, sends the rest, and frees their room in the queue', async () => {
    const db = await open();
    const [good1, good2] = [rec(0), rec(2)];
    const noName = { ...rec(1), name: '' };
    const { bytes: _b, ...noBytes } = rec(3);
    await add(db, [[good1!, noName, noBytes as EventRecord, good2!]], 4);
    const { batch, dead } = await claimBatch(db, opts());
    expect(ids(batch)).toEqual(ids([good1!, good2!]));
    expect(dead.map((r) => [r.externalId, r.status])).toEqual([
      [noName.externalId, 'dead'],
      [noBytes.externalId, 'dead'],
    ]);
    expect(await db.get(EVENTS, noName.externalId)).toMatchObject({ status: 'dead', error: 'corrupted record: name missing or of the wrong type' });
    expect((await db.get(EVENTS, noBytes.externalId))?.error).toContain('bytes/attempts/nextAttemptAt');
    // Two waiting of 4: room for two more, not three.
    expect((await add(db, [[rec(10), rec(11)]], 4)).results[0]).toHaveLength(2);
    expect((await add(db, [[rec(12)]], 4)).results[0]).toBeInstanceOf(QueueFullError);
    db.close();
  });

  it('holds a child back while its parent is pending, sends it after its parent in one batch, and dead-letters it when its parent is dead', async () => {
    const db = await open();
    const parent = { ...rec(0), nextAttemptAt: T + 5000 }; // a retry, not due yet
    const child = rec(1, { parentId: parent.externalId });
    const other = rec(2);
    const deadParent = { ...rec(3), status: 'dead' as const, error: 'refused' };
    const orphan = rec(4, { parentId: deadParent.externalId });
    const afterSent = rec(5, { parentId: 'long-gone' }); // parent sent and pruned: nothing to wait for
    await db.put(EVENTS, deadParent);
    await add(db, [[parent, child, other, orphan, afterSent]]);

    const now = await claimBatch(db, opts());
    expect(ids(now.batch)).toEqual(ids([other, afterSent]));
    expect(now.nextDueAt).toBe(T + 5000);
    expect(ids(now.dead)).toEqual([orphan.externalId]);
    expect(await db.get(EVENTS, orphan.externalId)).toMatchObject({ status: 'dead', error: `parent ${deadParent.externalId} was dead-lettered: refused` });
    await settle(db, sent(now.batch), T, 'strict');

    const later = await claimBatch(db, opts({ now: T + 5000 }));
    expect(ids(later.batch)).toEqual(ids([parent, child]));
    db.close();
  });

  it('skips events not due yet and reports the earliest; the network coming back makes those that waited for it due', async () => {
    const db = await open();
    const offline = { ...rec(0), nextAttemptAt: T + 60_000, waitingForNetwork: true };
    const backoff = { ...rec(1), nextAttemptAt: T + 9000 };
    await add(db, [[offline, backoff]]);
    const idle = await claimBatch(db, opts());
    expect(idle).toEqual({ batch: [], dead: [], nextDueAt: T + 9000 });
    expect(await claimRecord(db)).toBeUndefined();
    const back = await claimBatch(db, opts({ networkBack: true }));
    expect(ids(back.batch)).toEqual([offline.externalId]);
    db.close();
  });
});

describe('settle', () => {
  it('settles a sent batch from the claimed copies, with no read per event, and deletes the claim', async () => {
    const db = await open();
    await add(db, [recs(50)]);
    const { batch } = await claimBatch(db, opts());
    const keysRead: unknown[] = [];
    const gets = [IDBObjectStore.prototype, IDBIndex.prototype].map((p) => countCalls(p, 'get', ([key]) => keysRead.push(key)));
    const written = await settle(db, sent(batch), T + 5, 'strict');
    for (const g of gets) g.restore();
    // The claim and the counter (read again by a slice's yield on a slow machine), whatever the batch's size; never an event.
    expect([...new Set(keysRead)].sort()).toEqual(['claim', 'waiting']);
    expect(written).toHaveLength(50);
    expect(await countByStatus(db, T + 5)).toMatchObject({ pending: 0, sending: 0, sent: 50 });
    expect(await claimRecord(db)).toBeUndefined();
    expect(await db.get(EVENTS, batch[0]!.externalId)).toMatchObject({ status: 'sent', sentAt: T + 5, name: 'api.call', metadata: { n: 0 }, error: null });
    db.close();
  });

  it('drops the settled events from the claim and keeps the rest shown as sending', async () => {
    const db = await open();
    const all = recs(3);
    await add(db, [all]);
    await claimBatch(db, opts());
    await settle(db, sent(all.slice(0, 2)), T, 'strict');
    expect((await claimRecord(db))?.ids).toEqual([all[2]!.externalId]);
    expect(await countByStatus(db, T)).toMatchObject({ pending: 0, sending: 1, sent: 2 });
    await settle(db, [{ record: all[2]!, to: 'dead', error: 'refused' }], T, 'strict');
    expect(await claimRecord(db)).toBeUndefined();
    expect(await db.get(EVENTS, all[2]!.externalId)).toMatchObject({ status: 'dead', error: 'refused' });
    db.close();
  });

  it('never writes back from the claimed copy an event that clear() removed or a reconcile confirmed while it was on the wire', async () => {
    const db = await open();
    const [cleared, confirmed, plain] = [rec(0, { externalCustomerId: 'gone' }), rec(1), rec(2)];
    await add(db, [[cleared!, confirmed!, plain!]]);
    const { batch } = await claimBatch(db, opts());
    await clearCustomers(db, ['ext:gone'], 'strict');
    await db.put(EVENTS, { ...confirmed!, status: 'confirmed', confirmedAt: T + 1 });
    // Readers show as sending only the claimed events still pending.
    expect(await countByStatus(db, T)).toMatchObject({ pending: 0, sending: 1, confirmed: 1 });
    const written = await settle(db, sent(batch), T + 5, 'strict');
    expect(ids(written)).toEqual([plain!.externalId]);
    expect(await db.get(EVENTS, cleared!.externalId)).toBeUndefined();
    expect((await db.get(EVENTS, confirmed!.externalId))?.status).toBe('confirmed');
    db.close();
  });

  it('keeps the waiting count exact when it settles after another writer deleted the counter', async () => {
    const db = await open();
    await add(db, [recs(5)], 5);
    const { batch } = await claimBatch(db, opts());
    await dropCounter(db); // e.g. clear() of another customer, a revive, a reconcile's resend
    await settle(db, sent(batch.slice(0, 2)), T, 'strict');
    // Three wait of 5: two more fit, three do not.
    expect((await add(db, [recs(3, 10)], 5)).results[0]).toMatchObject({ waiting: 3 });
    expect((await add(db, [recs(2, 20)], 5)).results[0]).toHaveLength(2);
    expect(await pendingCount(db)).toBe(5);
    db.close();
  });

  it('puts a failed send back to wait (attempt counted, due later, waiting for the network) and a later sent clears that', async () => {
    const db = await open();
    const [a, b] = recs(2);
    await add(db, [[a!, b!]], 2);
    const { batch } = await claimBatch(db, opts());
    await settle(
      db,
      [
        { record: batch[0]!, to: 'pending', nextAttemptAt: T + 1000, countAttempt: true, error: 'fetch failed', waitingForNetwork: true },
        { record: batch[1]!, to: 'pending', nextAttemptAt: T + 2000, countAttempt: false, error: null },
      ],
      T,
      'strict',
    );
    expect(await db.get(EVENTS, a!.externalId)).toMatchObject({
      status: 'pending',
      attempts: 1,
      nextAttemptAt: T + 1000,
      error: 'fetch failed',
      waitingForNetwork: true,
    });
    expect(await db.get(EVENTS, b!.externalId)).toMatchObject({ status: 'pending', attempts: 0, nextAttemptAt: T + 2000 });
    expect(await claimRecord(db)).toBeUndefined();
    // Still waiting: no room was freed.
    expect((await add(db, [[rec(9)]], 2)).results[0]).toBeInstanceOf(QueueFullError);

    const retry = await claimBatch(db, opts({ now: T + 1000 }));
    expect(ids(retry.batch)).toEqual([a!.externalId]);
    await settle(db, [{ record: retry.batch[0]!, to: 'sent', heldByServer: true }], T + 1001, 'strict');
    const stored = (await db.get(EVENTS, a!.externalId))!;
    expect(stored).toMatchObject({ status: 'sent', sentAt: T + 1001, error: null, nextAttemptAt: 0, heldByServer: true, fingerprint: a!.fingerprint });
    expect(stored.waitingForNetwork).toBeUndefined();
    expect((await add(db, [[rec(10)]], 2)).results[0]).toHaveLength(1);
    db.close();
  });
});

describe('append', () => {
  it('writes several groups in one transaction; a group that would pass maxQueueSize fails alone', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const tabA = await openBufferDb(factory, name);
    const tabB = await openBufferDb(factory, name);
    await add(tabA, [recs(1)], 5);
    await add(tabB, [recs(2, 10)], 5);
    const txs = countCalls(IDBDatabase.prototype, 'transaction');
    const [g1, g2, g3] = [recs(1, 20), recs(2, 30), recs(1, 40)];
    const { results, waiting } = await add(tabA, [g1, g2, g3], 5);
    expect(txs.calls).toBe(1);
    expect(results[0]).toEqual(g1);
    expect(results[1]).toBeInstanceOf(QueueFullError);
    expect(results[1]).toMatchObject({ code: 'queue-full', waiting: 4, maxQueueSize: 5 });
    expect(results[2]).toEqual(g3);
    expect(waiting).toBe(5);
    expect((await countByStatus(tabA, T)).pending).toBe(5);
    expect(await tabA.get(EVENTS, g2[0]!.externalId)).toBeUndefined();
    tabA.close();
    tabB.close();
  });

  it('two connections never pass maxQueueSize together, in turn or at once', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const tabA = await openBufferDb(factory, name);
    const tabB = await openBufferDb(factory, name);
    expect((await add(tabA, [recs(2)], 5)).results[0]).toHaveLength(2);
    expect((await add(tabB, [recs(3, 10)], 5)).results[0]).toHaveLength(3);
    expect((await add(tabA, [recs(1, 20)], 5)).results[0]).toBeInstanceOf(QueueFullError);
    expect(await pendingCount(tabA)).toBe(5);

    // At once: 20 single-event appends racing from both tabs against a limit of 12.
    const other = uniqueDbName();
    const a = await openBufferDb(factory, other);
    const b = await openBufferDb(factory, other);
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => add(i % 2 ? a : b, [recs(1, 100 + i)], 12)));
    expect(outcomes.filter((o) => Array.isArray(o.results[0]))).toHaveLength(12);
    expect(await pendingCount(a)).toBe(12);
    for (const c of [tabA, tabB, a, b]) c.close();
  });

  it('frees room when events are settled sent or dead, not when they go back to wait', async () => {
    const db = await open();
    await add(db, [recs(5)], 5);
    expect((await add(db, [recs(1, 10)], 5)).results[0]).toBeInstanceOf(QueueFullError);
    const { batch } = await claimBatch(db, opts());
    await settle(db, [...sent(batch.slice(0, 3)), { record: batch[3]!, to: 'dead', error: 'refused' }], T, 'strict');
    expect((await add(db, [recs(5, 20)], 5)).results[0]).toBeInstanceOf(QueueFullError);
    const again = await add(db, [recs(4, 30)], 5);
    expect(again.results[0]).toHaveLength(4);
    expect(again.waiting).toBe(5);
    db.close();
  });

  it('counts the index only for a new database: settles and revives move the counter in their own transaction', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const db = await openBufferDb(factory, name);
    const counts = countCalls(IDBIndex.prototype, 'count');
    await add(db, [recs(5)], 5); // a new database: no counter yet, so one count
    expect(counts.calls).toBe(1);
    const { batch } = await claimBatch(db, opts());
    await settle(
      db,
      batch.map((record) => ({ record, to: 'dead' as const, error: 'refused' })),
      T,
      'strict',
    );
    counts.calls = 0;
    expect((await add(db, [recs(2, 10)], 5)).results[0]).toHaveLength(2);
    // A new connection reads the counter the last writer left in meta.
    const fresh = await openBufferDb(factory, name);
    expect((await add(fresh, [recs(1, 20)], 5)).results[0]).toHaveLength(1);
    expect(counts.calls).toBe(0);

    expect(await editDead(db, undefined, true, 'strict')).toBe(5);
    const after = await add(db, [recs(1, 30)], 5);
    expect(counts.calls).toBe(0);
    expect(after.results[0]).toMatchObject({ waiting: 8 });
    expect(await pendingCount(db)).toBe(8);
    db.close();
    fresh.close();
  });

  it('returns the stored event for the same event again under its externalId (shown sending while claimed)', async () => {
    const db = await open();
    const first = rec(0, { externalId: 'order-1' });
    await add(db, [[first]]);
    // A retried track() without a timestamp: a new time, the same event.
    const again = { ...rec(0, { externalId: 'order-1' }), timestampMs: T + 5 };
    const { results, waiting } = await add(db, [[again, rec(2)]]);
    expect((results[0] as EventRecord[])[0]).toEqual(first);
    expect(waiting).toBe(2);

    await claimBatch(db, opts({ batchSize: 1 }));
    expect(((await add(db, [[rec(0, { externalId: 'order-1' })]])).results[0] as EventRecord[])[0]).toMatchObject({ status: 'sending', metadata: { n: 0 } });
    // Within one call: the second group gets the first group's record; a refused group's ids stay free.
    const x1 = rec(4, { externalId: 'order-2' });
    const y = rec(5, { externalId: 'order-3' });
    const mixed = await add(db, [[x1], [rec(4, { externalId: 'order-2' })], [y, rec(7)], [rec(8, { externalId: 'order-3' })]], 4);
    expect((mixed.results[1] as EventRecord[])[0]).toBe(x1);
    expect(mixed.results[2]).toBeInstanceOf(QueueFullError);
    expect((mixed.results[3] as EventRecord[])[0]).toMatchObject({ externalId: 'order-3', metadata: { n: 8 } });
    expect(await pendingCount(db)).toBe(4);
    db.close();
  });

  it('refuses another event under an externalId a stored or same-call event holds, naming it (path externalId)', async () => {
    const db = await open();
    await add(db, [[rec(0, { externalId: 'order-1' })]]);
    const other = await add(db, [[rec(1, { externalId: 'order-1' })], [rec(2, { externalId: 'order-2' }), rec(3, { externalId: 'order-2' })]]);
    for (const refused of other.results) {
      expect(refused).toBeInstanceOf(EventValidationError);
      expect((refused as EventValidationError).failures[0]).toMatchObject({
        path: ['externalId'],
        message: expect.stringMatching(/"order-[12]" is held by another/),
      });
    }
    expect((await db.get(EVENTS, 'order-1'))?.metadata).toEqual({ n: 0 });
    expect(await db.get(EVENTS, 'order-2')).toBeUndefined();
    expect(await pendingCount(db)).toBe(1);
    db.close();
  });

  it('refuses a parentId chain that loops back, through the call or the stored events (path parentId)', async () => {
    const db = await open();
    // A child stored before its parent (caller-chosen ids): the parent naming it would close a loop.
    await add(db, [[rec(0, { externalId: 'b', parentId: 'a' })]]);
    const [loop, self, ok] = (
      await add(db, [[rec(1, { externalId: 'a', parentId: 'b' })], [rec(2, { externalId: 'c', parentId: 'c' })], [rec(3, { externalId: 'a' })]])
    ).results;
    expect((loop as EventValidationError).failures).toEqual([{ index: 0, path: ['parentId'], message: expect.stringContaining('a → b → a') }]);
    expect((self as EventValidationError).failures[0]).toMatchObject({ path: ['parentId'] });
    expect(ok).toHaveLength(1);
    const within = (await add(db, [[rec(4, { externalId: 'x', parentId: 'y' }), rec(5, { externalId: 'y', parentId: 'x' })]])).results[0];
    expect((within as EventValidationError).failures.map((f) => (f as { index?: number }).index)).toEqual([0, 1]);
    expect(await pendingCount(db)).toBe(2);
    db.close();
  });

  it('stores nothing of the call when one record cannot be cloned', async () => {
    const db = await open();
    await add(db, [recs(1)]);
    const bad = { ...rec(2), metadata: { n: () => 1 } } as unknown as EventRecord;
    await expect(add(db, [recs(1, 10), [bad]])).rejects.toMatchObject({ code: 'storage' });
    expect(await pendingCount(db)).toBe(1);
    expect((await db.get(META, 'waiting'))?.value).toBe(1);
    db.close();
  });
});

describe('pruneSent', () => {
  it('deletes sent events sent before the cutoff and the oldest beyond max, never pending or dead ones, at most 1000 a call', async () => {
    const db = await open();
    const waitingResend = { ...rec(0), sentAt: T - 9000 };
    const deadResend = { ...rec(1), status: 'dead' as const, sentAt: T - 9000, error: 'refused' };
    const sentOnes = recs(6, 10).map((r, i) => ({ ...r, status: 'sent' as const, sentAt: T + i }));
    for (const r of [waitingResend, deadResend, ...sentOnes]) await db.put(EVENTS, r);
    expect(await pruneSent(db, T + 2, 100, 'strict')).toBe(2);
    expect(await pruneSent(db, 0, 2, 'strict')).toBe(2);
    expect((await db.getAllKeys(EVENTS)).sort()).toEqual(ids([waitingResend, deadResend, sentOnes[4]!, sentOnes[5]!]).sort());

    const many = recs(1003, 100).map((r) => ({ ...r, status: 'sent' as const, sentAt: T }));
    const tx = db.transaction(EVENTS, 'readwrite');
    for (const r of many) void tx.store.put(r);
    await tx.done;
    expect(await pruneSent(db, T + 1, 1000, 'strict')).toBe(1000);
    expect(await pruneSent(db, T + 1, 1000, 'strict')).toBe(5);
    expect(await countByStatus(db, T)).toMatchObject({ pending: 1, dead: 1, sent: 0 });
    db.close();
  });
});

describe('clearCustomers', () => {
  const mirror = (id: string, customerKey: string): MirrorRecord => ({
    id,
    timestampMs: T,
    name: 'api.call',
    customerKey,
    fingerprints: [],
    event: {},
    storedAt: T,
    localExternalId: null,
  });

  it('clears events, mirrored events and cursors under every key given, keeps other customers, and the waiting count follows', async () => {
    const db = await open();
    const keep = rec(2, { externalCustomerId: 'user_2' });
    await add(db, [[rec(0), rec(1, { customerId: 'cus_9', externalCustomerId: undefined as unknown as string }), keep, rec(3)]], 4);
    for (const m of [mirror('a', 'ext:user_1'), mirror('b', 'cus:cus_9'), mirror('c', 'ext:user_2')]) await db.put(MIRROR, m);
    for (const key of ['cursor:ext:user_1', 'alias:ext:user_1', 'cursor:cus:cus_9', 'cursor:ext:user_2']) await db.put(META, { key, value: 1 });
    await db.put(META, { key: 'flush-lease', value: { owner: 'tab-z', until: T + 1000 } });

    await clearCustomers(db, ['ext:user_1', 'cus:cus_9'], 'strict');
    expect(await db.getAllKeys(EVENTS)).toEqual([keep.externalId]);
    expect(await db.getAllKeys(MIRROR)).toEqual(['c']);
    const metaKeys = await db.getAllKeys(META);
    expect(metaKeys).toEqual(expect.arrayContaining(['cursor:ext:user_2', 'flush-lease']));
    expect(metaKeys).not.toEqual(expect.arrayContaining(['cursor:ext:user_1']));
    expect(metaKeys.filter((k) => /user_1|cus_9/.test(String(k)))).toEqual([]);
    // One event waits of 4: three fit (a stale counter of 4 would refuse them).
    expect((await add(db, [recs(3, 10)], 4)).results[0]).toHaveLength(3);

    await clearCustomers(db, undefined, 'strict');
    expect(await db.count(EVENTS)).toBe(0);
    expect(await db.count(MIRROR)).toBe(0);
    expect((await add(db, [recs(4, 20)], 4)).results[0]).toHaveLength(4);
    db.close();
  });
});

describe('the flush lease', () => {
  it('is free, then held by its owner until it expires, renewable by that owner, released only by it', async () => {
    const db = await open();
    expect(await takeLease(db, 'tab-a', T, 1000)).toBe(true);
    expect(await takeLease(db, 'tab-b', T + 999, 1000)).toBe(false);
    expect(await takeLease(db, 'tab-a', T + 500, 1000)).toBe(true); // renewed: until T + 1500
    expect(await takeLease(db, 'tab-b', T + 1000, 1000)).toBe(false);
    expect(await takeLease(db, 'tab-b', T + 1500, 1000)).toBe(true); // expired
    await releaseLease(db, 'tab-a'); // not its lease any more
    expect(await takeLease(db, 'tab-a', T + 1600, 1000)).toBe(false);
    await releaseLease(db, 'tab-b');
    expect(await takeLease(db, 'tab-a', T + 1600, 1000)).toBe(true);
    db.close();
  });
});

describe('editDead', () => {
  it('revives or deletes the dead letters named, or all of them, and nothing else', async () => {
    const db = await open();
    const dead = recs(3).map((r) => ({ ...r, status: 'dead' as const, attempts: 4, nextAttemptAt: T + 1, error: 'refused' }));
    const live = rec(9);
    for (const r of [...dead, live]) await db.put(EVENTS, r);
    expect(await editDead(db, [dead[0]!.externalId, live.externalId, 'nope'], true, 'strict')).toBe(1);
    expect(await db.get(EVENTS, dead[0]!.externalId)).toMatchObject({ status: 'pending', attempts: 0, nextAttemptAt: 0, error: null });
    expect(await editDead(db, undefined, false, 'strict')).toBe(2);
    expect((await db.getAllKeys(EVENTS)).sort()).toEqual(ids([dead[0]!, live]).sort());
    db.close();
  });
});

describe('claim and lease bookkeeping', () => {
  it('drops the claim when a flush finds nothing to send, so nothing stays shown as sending', async () => {
    const db = await open();
    const big = { ...rec(0), bytes: 70_000 };
    await add(db, [[big]]);
    // A normal flush claims it, then a keepalive flush finds only it (too big for a keepalive body).
    expect(ids((await claimBatch(db, opts({ maxBatchBytes: 100_000, maxBytes: 100_000 }))).batch)).toEqual([big.externalId]);
    expect((await countByStatus(db, T)).sending).toBe(1);
    expect((await claimBatch(db, opts({ maxBatchBytes: 100_000, maxBytes: 60_000 }))).batch).toEqual([]);
    expect(await claimRecord(db)).toBeUndefined();
    expect(await countByStatus(db, T)).toMatchObject({ pending: 1, sending: 0 });
    db.close();
  });

  it('clears every store but keeps the flush lease another tab may hold', async () => {
    const db = await open();
    await add(db, [recs(3)]);
    expect(await takeLease(db, 'other-tab', T, 30_000)).toBe(true);
    await db.put(META, { key: 'cursor:ext:user_1', value: 1 });
    await db.put(META, { key: 'zzz', value: 1 });
    await clearCustomers(db, undefined, 'strict');
    expect(await db.getAllKeys(META)).toEqual(['flush-lease']);
    expect(await takeLease(db, 'this-tab', T, 30_000)).toBe(false);
    expect(await db.count(EVENTS)).toBe(0);
    db.close();
  });
});

describe('long batches', () => {
  it('settles a 5,000-event batch in slices of one transaction, going on from a request of its own', async () => {
    const db = await open();
    const batch = recs(5000);
    await add(db, [batch], 10_000);
    const claimed = (await claimBatch(db, opts({ batchSize: 1000 }))).batch;
    expect(claimed).toHaveLength(1000);
    let waitingReads = 0;
    countCalls(IDBObjectStore.prototype, 'get', ([key]) => void (key === 'waiting' && waitingReads++));
    const all = await settle(db, sent(batch), T, 'strict');
    expect(all).toHaveLength(5000);
    // One read moves the count; every other one ends a slice of about 30 ms of puts.
    expect(waitingReads).toBeGreaterThan(1);
    expect((await countByStatus(db, T)).sent).toBe(5000);
    db.close();
  });
});
