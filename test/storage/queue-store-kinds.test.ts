import { describe, expect, it } from 'vitest';
import { openBufferDb } from '../../src/storage/db.js';
import { appendGroups, claimBatch, clearCustomer, countByStatus } from '../../src/storage/queue-store.js';
import { newRecord } from '../../src/storage/serialize.js';
import { MIRROR } from '../../src/storage/schema.js';
import { uuidv7 } from '../../src/ids.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';

const claim = { batchSize: 100, maxBatchBytes: 60_000, leaseDuration: 30_000, owner: 'tab-a', durability: 'strict' as const };

function record(n: number, now: number, customer = 'user_1') {
  return newRecord({ name: 'api_call', externalCustomerId: customer, metadata: { n } }, uuidv7(now), now);
}

describe('queue store: batch kinds, atomic writes, clearing a customer', () => {
  it('never mixes first sends and resends in one batch', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    const resent = { ...record(0, now), sentAt: now - 700_000 }; // sent before, returned to waiting by reconcile
    const fresh = [record(1, now), record(2, now)];
    const resentLater = { ...record(3, now), sentAt: now - 700_000 };
    await appendGroups(db, [{ records: [resent, ...fresh, resentLater] }], { maxQueueSize: 100, durability: 'strict' });

    const first = await claimBatch(db, { ...claim, now });
    expect(first.batch.map((r) => r.externalId)).toEqual([resent.externalId, resentLater.externalId]);
    const second = await claimBatch(db, { ...claim, now });
    expect(second.batch.map((r) => r.externalId)).toEqual(fresh.map((r) => r.externalId));
    db.close();
  });

  it('writes nothing of a coalesced transaction when one record cannot be stored', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    const good = record(1, now);
    const bad = { ...record(2, now), metadata: { n: () => 1 } } as unknown as ReturnType<typeof record>;
    await expect(
      appendGroups(db, [{ records: [good] }, { records: [bad] }], { maxQueueSize: 100, durability: 'strict' }),
    ).rejects.toMatchObject({ code: 'storage' });
    expect((await countByStatus(db, Date.now())).pending).toBe(0);
    db.close();
  });

  it('clears a customer under every key it is known by, and keeps the others', async () => {
    const db = await openBufferDb(freshIndexedDB(), uniqueDbName());
    const now = Date.now();
    await appendGroups(db, [{ records: [record(1, now, 'user_1'), record(2, now, 'user_2')] }], { maxQueueSize: 100, durability: 'strict' });
    const tx = db.transaction(MIRROR, 'readwrite');
    const mirror = (id: string, customerKey: string) => ({
      id,
      timestampMs: now,
      name: 'api_call',
      customerKey,
      fingerprints: [],
      event: {},
      storedAt: now,
      localExternalId: null,
    });
    await tx.store.put(mirror('a', 'ext:user_1'));
    await tx.store.put(mirror('b', 'cus:0b6a1f8e-1111-4a2e-9c41-5e8f7a6b9d20'));
    await tx.store.put(mirror('c', 'ext:user_2'));
    await tx.done;

    const removed = await clearCustomer(db, ['ext:user_1', 'cus:0b6a1f8e-1111-4a2e-9c41-5e8f7a6b9d20'], 'strict');
    expect(removed).toEqual({ events: 1, mirrored: 2 });
    expect((await db.getAll(MIRROR)).map((m) => m.id)).toEqual(['c']);
    expect((await countByStatus(db, Date.now())).pending).toBe(1);
    db.close();
  });
});
