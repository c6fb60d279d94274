import { describe, expect, it } from 'vitest';
import { QueueFullError } from '../../src/errors.js';
import { uuidv7 } from '../../src/ids.js';
import { openBufferDb } from '../../src/storage/db.js';
import { appendGroups, claimBatch, countByStatus, reviveDead, settle } from '../../src/storage/queue-store.js';
import { newRecord } from '../../src/storage/serialize.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';

// appendGroups caches an upper bound of the waiting count per connection instead of counting the
// whole backlog on every write (issue 6). These tests hold it to the exact limit anyway.

const now = Date.now();
const rec = (n: number) => newRecord({ name: 'api_call', externalCustomerId: 'user_1', metadata: { n } }, uuidv7(now), now);
const records = (count: number, from = 0) => Array.from({ length: count }, (_, i) => rec(from + i));
const append = (db: Awaited<ReturnType<typeof openBufferDb>>, rs: ReturnType<typeof rec>[], maxQueueSize = 5) =>
  appendGroups(db, [{ records: rs }], { maxQueueSize, durability: 'strict' });
const claim = { batchSize: 100, maxBatchBytes: 60_000, leaseDuration: 30_000, owner: 'tab-a', durability: 'strict' as const };

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
    expect((await countByStatus(tabA)).pending).toBe(5);
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
    expect((await countByStatus(tabA)).pending).toBe(5);
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
});
