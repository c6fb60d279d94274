import { afterEach, describe, expect, it } from 'vitest';
import { openBufferDb } from '../../src/storage/db.js';
import { EVENTS, META } from '../../src/storage/schema.js';
import { appendGroups, claimBatch, clearCustomer, countByStatus, getEvents, settle } from '../../src/storage/queue-store.js';
import { newRecord } from '../../src/storage/serialize.js';
import { uuidv7 } from '../../src/ids.js';
import { countCalls } from '../helpers/count-calls.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory, input, ManualClock } from '../event-buffer/support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

function records(count: number, now = Date.now()) {
  return Array.from({ length: count }, (_, i) => newRecord({ name: 'api.call', externalCustomerId: 'user_42', metadata: { n: i } }, uuidv7(now), now));
}

const claimOptions = { batchSize: 100, maxBatchBytes: 60_000, leaseDuration: 30_000, owner: 'tab-a', durability: 'strict' as const };

/**
 * Counts records IndexedDB hands out (each cursor step, each getAll item) while installed. Cursor
 * steps are counted on the cursor request's success events: idb recognises IDBCursor.continue by
 * identity, so that method must stay untouched.
 */
function countReads() {
  const indexProto = IDBIndex.prototype;
  const storeProto = IDBObjectStore.prototype;
  const originals = {
    indexGetAll: indexProto.getAll,
    storeGetAll: storeProto.getAll,
    indexOpenCursor: indexProto.openCursor,
    storeOpenCursor: storeProto.openCursor,
  };
  const counter = { reads: 0 };
  const countResult = (request: IDBRequest) => {
    request.addEventListener('success', () => {
      const r = request.result as unknown;
      if (Array.isArray(r)) counter.reads += r.length;
      else if (r) counter.reads++;
    });
    return request;
  };
  indexProto.getAll = function (this: IDBIndex, ...args: Parameters<IDBIndex['getAll']>) {
    return countResult(originals.indexGetAll.apply(this, args));
  } as IDBIndex['getAll'];
  storeProto.getAll = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['getAll']>) {
    return countResult(originals.storeGetAll.apply(this, args));
  } as IDBObjectStore['getAll'];
  indexProto.openCursor = function (this: IDBIndex, ...args: Parameters<IDBIndex['openCursor']>) {
    return countResult(originals.indexOpenCursor.apply(this, args));
  } as IDBIndex['openCursor'];
  storeProto.openCursor = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['openCursor']>) {
    return countResult(originals.storeOpenCursor.apply(this, args));
  } as IDBObjectStore['openCursor'];
  restore = () => {
    indexProto.getAll = originals.indexGetAll;
    storeProto.getAll = originals.storeGetAll;
    indexProto.openCursor = originals.indexOpenCursor;
    storeProto.openCursor = originals.storeOpenCursor;
  };
  return counter;
}
let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

describe('queue store', () => {
  it('claims one batch of a 5,000-event queue reading about batchSize records, not the whole queue', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    await appendGroups(db, [{ records: records(5000) }], { maxQueueSize: 10_000, durability: 'relaxed' });
    const counter = countReads();
    const now = Date.now();
    const claim = await claimBatch(db, { ...claimOptions, now });
    restore!();
    expect(claim.batch).toHaveLength(100);
    expect(counter.reads).toBeGreaterThanOrEqual(100);
    expect(counter.reads).toBeLessThanOrEqual(110);
    expect(await countByStatus(db, now)).toMatchObject({ pending: 4900, sending: 100 });
    db.close();
  });

  it('claims the oldest pending events in creation order and leases them', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    const all = records(5, now);
    await appendGroups(db, [{ records: all.slice(0, 3) }, { records: all.slice(3) }], { maxQueueSize: 100, durability: 'strict' });
    const claim = await claimBatch(db, { ...claimOptions, batchSize: 3, now });
    expect(claim.batch.map((r) => r.externalId)).toEqual(all.slice(0, 3).map((r) => r.externalId));
    // One lease record for the batch; the events themselves are not rewritten, yet read as `sending`.
    const leases = await db.getAll(META, IDBKeyRange.bound('claim:', 'claim:\uffff'));
    expect(leases).toHaveLength(1);
    expect(leases[0]!.value).toMatchObject({ owner: 'tab-a', leaseUntil: now + 30_000, ids: all.slice(0, 3).map((r) => r.externalId) });
    expect((await getEvents(db, [all[0]!.externalId]))[0]).toMatchObject({ status: 'pending', leaseUntil: 0, leaseOwner: null });
    expect(await countByStatus(db, now)).toMatchObject({ pending: all.length - 3, sending: 3 });
    // Once the lease has run out (its holder died) they are pending again, with nothing to undo.
    expect(await countByStatus(db, now + 30_000)).toMatchObject({ pending: all.length, sending: 0 });
    db.close();
  });

  it('does not settle a batch whose lease another holder took over', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    await appendGroups(db, [{ records: records(2, now) }], { maxQueueSize: 100, durability: 'strict' });
    const stale = await claimBatch(db, { ...claimOptions, now, leaseDuration: 10 });
    const taken = await claimBatch(db, { ...claimOptions, owner: 'tab-b', now: now + 11 });
    expect(taken.reclaimed).toBe(2);
    expect(taken.batch).toHaveLength(2);
    const written = await settle(
      db,
      stale.batch.map((r) => ({ externalId: r.externalId, to: 'dead' as const, error: 'late' })),
      { now: now + 12, owner: 'tab-a', durability: 'strict' },
    );
    expect(written).toHaveLength(0);
    expect(await countByStatus(db, now + 12)).toMatchObject({ sending: 2, dead: 0 });
    db.close();
  });

  it('settles a sent batch from the claimed copies, without reading its records back one by one', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    await appendGroups(db, [{ records: records(50, now) }], { maxQueueSize: 100, durability: 'strict' });
    const { batch } = await claimBatch(db, { ...claimOptions, now });
    const keysRead: unknown[] = [];
    const gets = countCalls(IDBObjectStore.prototype, 'get', ([key]) => keysRead.push(key));
    const written = await settle(db, batch.map((r) => ({ externalId: r.externalId, to: 'sent' as const, record: r })), { now: now + 5, owner: 'tab-a', durability: 'strict' });
    gets.restore();
    expect(keysRead.filter((key) => batch.some((r) => r.externalId === key))).toEqual([]);
    expect(written).toHaveLength(50);
    expect(await countByStatus(db, now + 5)).toMatchObject({ sending: 0, sent: 50 });
    // The settled batch's lease is gone.
    expect(await db.getAll(META, IDBKeyRange.bound('claim:', 'claim:\uffff'))).toEqual([]);
    const stored = await getEvents(db, [batch[0]!.externalId]);
    expect(stored[0]).toMatchObject({ status: 'sent', sentAt: now + 5, leaseOwner: null, leaseUntil: 0, name: 'api.call', metadata: { n: 0 } });
    db.close();
  });

  it('never writes back from the claimed copy an event that clear() removed or a reconcile confirmed while it was on the wire', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    await appendGroups(db, [{ records: records(3, now) }], { maxQueueSize: 100, durability: 'strict' });
    const { batch } = await claimBatch(db, { ...claimOptions, now });
    const [cleared, confirmed, plain] = batch as [typeof batch[0], typeof batch[0], typeof batch[0]];
    // Meanwhile: one event confirmed by a reconcile, then every event of its customer cleared but
    // that one put back (as if it were another customer's) — so exactly `cleared` is gone.
    await clearCustomer(db, [cleared.customerKey], 'strict');
    await appendGroups(db, [{ records: [{ ...confirmed, status: 'confirmed', confirmedAt: now + 1 }, plain] }], { maxQueueSize: 100, durability: 'strict' });
    const written = await settle(db, batch.map((r) => ({ externalId: r.externalId, to: 'sent' as const, record: r })), { now: now + 5, owner: 'tab-a', durability: 'strict' });
    expect(written.map((r) => r.externalId)).toEqual([plain.externalId]);
    expect((await getEvents(db, [cleared.externalId])).length).toBe(0);
    expect((await getEvents(db, [confirmed.externalId]))[0]?.status).toBe('confirmed');
    db.close();
  });

  it('looks for events an earlier version left `sending` under an expired lease only when told (a flush\'s first claim)', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    const old = records(4, now).map((r, i) => (i < 2 ? { ...r, status: 'sending' as const, leaseUntil: now - 1, leaseOwner: 'old-tab' } : r));
    for (const r of old) await db.put(EVENTS, r);
    const later = await claimBatch(db, { ...claimOptions, batchSize: 4, owner: 'tab-b', now, reclaim: false });
    expect(later.reclaimed).toBe(0);
    expect(later.batch.map((r) => r.externalId)).toEqual([old[2]!.externalId, old[3]!.externalId]);
    const again = await claimBatch(db, { ...claimOptions, batchSize: 4, owner: 'tab-b', now: now + 1 });
    expect(again.reclaimed).toBe(2);
    expect(again.batch.map((r) => r.externalId)).toEqual([old[0]!.externalId, old[1]!.externalId]);
    db.close();
  });

  it('skips the events of every live claim, its own owner\'s too, and takes those of an expired one', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    const all = records(6, now);
    await appendGroups(db, [{ records: all }], { maxQueueSize: 100, durability: 'strict' });
    const first = await claimBatch(db, { ...claimOptions, batchSize: 2, now, leaseDuration: 10 });
    // A batch of tab-a's that was given up (never settled) is still leased: tab-a does not take it again.
    const second = await claimBatch(db, { ...claimOptions, batchSize: 2, now });
    const third = await claimBatch(db, { ...claimOptions, batchSize: 2, owner: 'tab-b', now: now + 5 });
    expect([first, second, third].map((c) => c.batch.map((r) => r.externalId))).toEqual([0, 2, 4].map((i) => [all[i]!.externalId, all[i + 1]!.externalId]));
    expect(await countByStatus(db, now + 5)).toMatchObject({ pending: 0, sending: 6 });
    // The first lease runs out: its events are taken by the next claim, which counts them reclaimed.
    const fourth = await claimBatch(db, { ...claimOptions, batchSize: 6, owner: 'tab-b', now: now + 11 });
    expect(fourth.reclaimed).toBe(2);
    expect(fourth.batch.map((r) => r.externalId)).toEqual([all[0]!.externalId, all[1]!.externalId]);
    // The expired claim is gone from `meta` (dropped in the same transaction); the live ones stay.
    const left = await db.getAll(META, IDBKeyRange.bound('claim:', 'claim:\uffff'));
    expect(left.map((r) => (r.value as { ids: string[] }).ids)).toEqual(
      expect.arrayContaining([[all[0]!.externalId, all[1]!.externalId], [all[2]!.externalId, all[3]!.externalId], [all[4]!.externalId, all[5]!.externalId]]),
    );
    expect(left).toHaveLength(3);
    db.close();
  });

  it('leaves pending an event too large for a keepalive body but not for maxBatchBytes, and dead-letters only one that can never fit', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    // ~75 KB on the wire: over a keepalive body (60,000 B), under the configured 1,000,000 B.
    const bigMetadata = Object.fromEntries(Array.from({ length: 150 }, (_, k) => [`k${k}`, 'x'.repeat(480)]));
    const [small1, , small2] = records(3, now);
    const big = newRecord({ name: 'api.call', externalCustomerId: 'user_42', metadata: bigMetadata }, uuidv7(now), now);
    await appendGroups(db, [{ records: [small1!, big, small2!] }], { maxQueueSize: 100, durability: 'strict' });
    expect(big.bytes).toBeGreaterThan(60_000);
    const keepalive = await claimBatch(db, { ...claimOptions, maxBatchBytes: 60_000, configuredMaxBatchBytes: 1_000_000, now });
    expect(keepalive.batch.map((r) => r.externalId)).toEqual([small1!.externalId, small2!.externalId]);
    expect(keepalive.oversized).toEqual([]);
    expect((await getEvents(db, [big.externalId]))[0]?.status).toBe('pending');
    // A flush whose own limit is the configured one: the event can never fit, so it is set aside with a reason.
    const plain = await claimBatch(db, { ...claimOptions, maxBatchBytes: 60_000, owner: 'tab-b', now });
    expect(plain.oversized.map((r) => r.externalId)).toEqual([big.externalId]);
    expect((await getEvents(db, [big.externalId]))[0]).toMatchObject({ status: 'dead', error: expect.stringContaining('maxBatchBytes') });
    db.close();
  });

  it('returns the batch of a crashed flush to waiting after leaseDuration, and a new buffer sends each event once', async () => {
    const server = await startPolar();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    const clock = new ManualClock();
    const writer = make(server, { indexedDB: factory, dbName, clock, leaseDuration: 20_000 });
    const events = await writer.trackMany([input(0), input(1), input(2)]);
    await writer.close();
    // A flush claims the batch and its tab dies before sending.
    const db = await openBufferDb(factory, dbName);
    const crashed = await claimBatch(db, { ...claimOptions, owner: 'dead-tab', leaseDuration: 20_000, now: clock.now() });
    db.close();
    expect(crashed.batch).toHaveLength(3);

    const next = make(server, { indexedDB: factory, dbName, clock, leaseDuration: 20_000 });
    expect(await next.flush()).toMatchObject({ sent: 0, remaining: 3 });
    expect(server.ingestRequests()).toHaveLength(0);
    clock.advance(20_001);
    expect(await next.flush()).toMatchObject({ sent: 3, remaining: 0 });
    expect(server.storedExternalIds()).toEqual(events.map((e) => e.externalId));
    expect([...server.countByExternalId().values()]).toEqual([1, 1, 1]);
  });
});
