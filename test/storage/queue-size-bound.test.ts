import { describe, expect, it } from 'vitest';
import { QueueFullError } from '../../src/errors.js';
import { uuidv7 } from '../../src/ids.js';
import { openBufferDb } from '../../src/storage/db.js';
import { appendGroups, claimBatch, countByStatus, RESERVE_MAX, RESERVE_MS, reviveDead, settle } from '../../src/storage/queue-store.js';
import { newRecord } from '../../src/storage/serialize.js';
import { spyTransactions } from '../event-buffer/support.js';
import { countCalls } from '../helpers/count-calls.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';

// appendGroups caches an upper bound of the waiting count per connection instead of counting the
// whole backlog on every write (issue 6). These tests hold it to the exact limit anyway.

const now = Date.now();
const rec = (n: number) => newRecord({ name: 'api_call', externalCustomerId: 'user_1', metadata: { n } }, uuidv7(now), now);
const records = (count: number, from = 0) => Array.from({ length: count }, (_, i) => rec(from + i));
const append = (db: Awaited<ReturnType<typeof openBufferDb>>, rs: ReturnType<typeof rec>[], maxQueueSize = 5) =>
  appendGroups(db, [{ records: rs }], { maxQueueSize, durability: 'strict' });
const claim = { batchSize: 100, maxBatchBytes: 60_000, leaseDuration: 30_000, owner: 'tab-a', durability: 'strict' as const };

const transactions = spyTransactions();

describe('queue-size check with a cached bound', () => {
  it('refuses at the exact limit when another connection added events since this one last wrote', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const tabA = await openBufferDb(factory, name);
    const tabB = await openBufferDb(factory, name);
    expect((await append(tabA, records(2))).outcomes[0]!.ok).toBe(true);
    expect((await append(tabB, records(3, 10))).outcomes[0]!.ok).toBe(true);
    const third = await append(tabA, records(1, 20));
    expect(third.outcomes[0]!.ok).toBe(false);
    expect((third.outcomes[0] as { error: Error }).error).toBeInstanceOf(QueueFullError);
    // The refused event was written optimistically, then taken back in the same transaction.
    expect((await countByStatus(tabA, Date.now())).pending).toBe(5);
    tabA.close();
    tabB.close();
  });

  it('counts dead letters that were revived into the queue', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    await append(db, records(5));
    const { batch } = await claimBatch(db, { ...claim, now });
    await settle(db, batch.map((r) => ({ externalId: r.externalId, to: 'dead' as const, error: 'refused' })), { now, owner: 'tab-a', durability: 'strict' });
    expect((await append(db, records(2, 10))).outcomes[0]!.ok).toBe(true);
    await reviveDead(db, undefined, { durability: 'strict' });
    const after = await append(db, records(1, 20));
    expect(after.outcomes[0]!.ok).toBe(false);
    db.close();
  });

  it('keeps the groups that fit and refuses the rest when another connection filled the queue', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const tabA = await openBufferDb(factory, name);
    const tabB = await openBufferDb(factory, name);
    await append(tabA, records(1));
    await append(tabB, records(2, 10));
    const both = await appendGroups(tabA, [{ records: records(1, 20) }, { records: records(2, 30) }, { records: records(1, 40) }], {
      maxQueueSize: 5,
      durability: 'strict',
    });
    expect(both.outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect((await countByStatus(tabA, Date.now())).pending).toBe(5);
    tabA.close();
    tabB.close();
  });

  it('accepts events again once a flush settled the full queue as sent', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    await append(db, records(5));
    expect((await append(db, records(1, 10))).outcomes[0]!.ok).toBe(false);
    const { batch } = await claimBatch(db, { ...claim, now });
    await settle(db, batch.map((r) => ({ externalId: r.externalId, to: 'sent' as const })), { now, owner: 'tab-a', durability: 'strict' });
    const again = await append(db, records(5, 20));
    expect(again.outcomes[0]!.ok).toBe(true);
    expect(again.waiting).toBe(5);
    db.close();
  });

  it('writes new events within its reservation in a transaction of the events store alone, with no read', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const opts = { maxQueueSize: 100_000, durability: 'strict' as const, now };
    await appendGroups(db, [{ records: records(1) }], opts); // checked: grants the reservation
    transactions.install();
    const gets = countCalls(IDBObjectStore.prototype, 'get');
    const getAlls = countCalls(IDBObjectStore.prototype, 'getAll');
    for (let i = 0; i < 10; i++) expect((await appendGroups(db, [{ records: records(1, 10 + i) }], opts)).outcomes[0]!.ok).toBe(true);
    expect(transactions.log.map((t) => t.stores)).toEqual(Array.from({ length: 10 }, () => ['events']));
    expect(gets.calls + getAlls.calls).toBe(0);
    // Past its slots (or its time) the connection checks again and takes new ones.
    await appendGroups(db, [{ records: records(RESERVE_MAX + 1, 100) }], opts);
    await appendGroups(db, [{ records: records(1, 5000) }], { ...opts, now: now + RESERVE_MS });
    expect((await countByStatus(db, Date.now())).pending).toBe(RESERVE_MAX + 13);
    db.close();
  });

  it('counts the slots another connection holds, so writes within a reservation never pass maxQueueSize; unused slots come back after RESERVE_MS', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const tabA = await openBufferDb(factory, name);
    const tabB = await openBufferDb(factory, name);
    const max = 400;
    const add = (db: typeof tabA, count: number, from: number, at = now) =>
      appendGroups(db, [{ records: records(count, from) }], { maxQueueSize: max, durability: 'strict', now: at });
    expect((await add(tabB, 1, 0)).outcomes[0]!.ok).toBe(true); // B now holds floor(399 / 8) = 49 slots
    expect((await add(tabA, 350, 1000)).outcomes[0]!.ok).toBe(true); // 1 + 350 + B's 49 = 400
    expect((await add(tabA, 1, 2000)).outcomes[0]!.ok).toBe(false);
    for (let i = 0; i < 49; i++) expect((await add(tabB, 1, 3000 + i)).outcomes[0]!.ok).toBe(true);
    expect((await countByStatus(tabA, Date.now())).pending).toBe(max);
    expect((await add(tabB, 1, 4000)).outcomes[0]!.ok).toBe(false);

    // B takes slots again once the queue has room, does not use them, and they lapse.
    const { batch } = await claimBatch(tabA, { ...claim, batchSize: 200, now });
    await settle(tabA, batch.map((r) => ({ externalId: r.externalId, to: 'sent' as const })), { now, owner: 'tab-a', durability: 'strict' });
    expect((await add(tabB, 1, 5000)).outcomes[0]!.ok).toBe(true); // 201 waiting; B holds floor(199 / 8) = 24 slots
    const fill = async (at: number) => {
      let n = 0;
      while ((await add(tabA, 1, 6000 + n, at)).outcomes[0]!.ok) n++;
      return n;
    };
    expect(await fill(now)).toBe(max - 24 - 201);
    expect(await fill(now + RESERVE_MS + 1)).toBe(24);
    expect((await countByStatus(tabA, Date.now())).pending).toBe(max);
    tabA.close();
    tabB.close();
  });

  it('a new connection starts from the bound the last writer left in meta instead of counting the backlog, and counts after a revive', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const writer = await openBufferDb(factory, name);
    await appendGroups(writer, [{ records: records(300) }], { maxQueueSize: 100_000, durability: 'strict', now });
    writer.close();
    const counts = countCalls(IDBIndex.prototype, 'count');
    const fresh = await openBufferDb(factory, name);
    expect((await appendGroups(fresh, [{ records: records(10, 1000) }], { maxQueueSize: 100_000, durability: 'strict', now })).outcomes[0]!.ok).toBe(true);
    expect(counts.calls).toBe(0);
    // Exact at the limit all the same: 310 waiting, and the stored bound (with the writer's slots) is higher.
    // (Past its reservation's time, or that write would go unchecked.)
    expect((await appendGroups(fresh, [{ records: records(1, 2000) }], { maxQueueSize: 310, durability: 'strict', now: now + RESERVE_MS })).outcomes[0]!.ok).toBe(false);
    expect(counts.calls).toBe(1);
    fresh.close();
    const third = await openBufferDb(factory, name);
    const { batch } = await claimBatch(third, { ...claim, batchSize: 1, now });
    await settle(third, [{ externalId: batch[0]!.externalId, to: 'dead', error: 'refused' }], { now, owner: 'tab-a', durability: 'strict' });
    expect(await reviveDead(third, undefined, { durability: 'strict' })).toHaveLength(1);
    third.close();
    const fourth = await openBufferDb(factory, name);
    counts.calls = 0;
    await appendGroups(fourth, [{ records: records(1, 3000) }], { maxQueueSize: 100_000, durability: 'strict', now });
    expect(counts.calls).toBe(1);
    fourth.close();
  });
});

