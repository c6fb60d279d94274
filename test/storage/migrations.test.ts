import { describe, expect, it } from 'vitest';
import { openBufferDb } from '../../src/storage/db.js';
import { DB_VERSION } from '../../src/storage/schema.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory } from '../event-buffer/support.js';

const startPolar = useMockPolar();
const make = bufferFactory();

/** A version-1 record: the queue fields alone, no customerKey or fingerprint. */
function v1Record(externalId: string, n: number, status: 'pending' | 'sending' | 'dead' = 'pending') {
  const timestampMs = Date.parse('2025-06-02T09:15:27.123456+00:00') + n;
  return {
    externalId,
    seq: externalId,
    name: 'api.call',
    externalCustomerId: 'user_42',
    customerId: null,
    organizationId: null,
    metadata: { n, model: 'gpt-4o' },
    timestampMs,
    parentId: null,
    status,
    attempts: 0,
    nextAttemptAt: 0,
    leaseUntil: 0,
    leaseOwner: null,
    createdAt: timestampMs,
    sentAt: null,
    serverId: null,
    error: status === 'dead' ? 'refused' : null,
    bytes: 150,
  };
}

/** Writes a database exactly as version 1 of the schema defined it, with the raw IndexedDB API. */
function writeVersion1(factory: IDBFactory, name: string, records: object[], meta: object[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      const events = db.createObjectStore('events', { keyPath: 'externalId' });
      events.createIndex('byStatus', ['status', 'seq']);
      const metaStore = db.createObjectStore('meta', { keyPath: 'key' });
      for (const record of records) events.put(record);
      for (const record of meta) metaStore.put(record);
    };
    request.onsuccess = () => {
      request.result.close();
      resolve();
    };
    request.onerror = () => reject(request.error);
  });
}

const IDS = ['0190b0c0-0000-7000-8000-000000000001', '0190b0c0-0000-7000-8000-000000000002', '0190b0c0-0000-7000-8000-000000000003'];

describe('migrations', () => {
  it('keeps every record of a version-1 database and backfills customerKey and fingerprint', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    await writeVersion1(factory, name, [v1Record(IDS[0]!, 0), v1Record(IDS[1]!, 1), v1Record(IDS[2]!, 2, 'dead')]);
    const db = await openBufferDb(factory, name);
    expect(db.version).toBe(DB_VERSION);
    expect([...db.objectStoreNames].sort()).toEqual(['events', 'meta', 'mirror']);
    const records = (await Promise.all(IDS.map((id) => db.get('events', id)))).filter((r) => r !== undefined);
    db.close();
    expect(records.map((r) => r.status)).toEqual(['pending', 'pending', 'dead']);
    expect(records.every((r) => r.customerKey === 'ext:user_42')).toBe(true);
    expect(records.every((r) => typeof r.fingerprint === 'string' && r.fingerprint.length > 0)).toBe(true);
    expect(new Set(records.map((r) => r.fingerprint)).size).toBe(3);
  });

  it('flushes the waiting events of a version-1 database to the server, oldest first', async () => {
    const server = await startPolar();
    const factory = freshIndexedDB();
    const dbName = uniqueDbName();
    await writeVersion1(factory, dbName, [v1Record(IDS[1]!, 1), v1Record(IDS[0]!, 0), v1Record(IDS[2]!, 2, 'dead')]);
    const buffer = make(server, { indexedDB: factory, dbName });
    expect(await buffer.stats()).toMatchObject({ pending: 2, dead: 1 });
    expect(await buffer.flush()).toMatchObject({ sent: 2, remaining: 0 });
    expect(server.storedExternalIds()).toEqual([IDS[0], IDS[1]]);
    // The version-1 time arrives to the millisecond (today's Polar writes it `…123000Z`).
    expect(Date.parse(server.events[0]!.timestamp)).toBe(Date.parse('2025-06-02T09:15:27.123Z'));
  });

  it('turns a per-event lease (status sending, leaseUntil, leaseOwner) into a pending event and drops the old claim and reservation records', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const leased = { ...v1Record(IDS[0]!, 0, 'sending'), leaseUntil: Date.now() + 3_600_000, leaseOwner: 'a-tab-that-died' };
    const meta = [
      { key: 'claim:a-tab:0190', value: { ids: [IDS[1]] } },
      { key: 'reserve:a-tab', value: { slots: 900, until: Date.now() + 3_600_000 } },
      { key: 'waiting-token', value: 'stale' },
      { key: 'cursor:ext:user_42', value: { kept: true } },
    ];
    await writeVersion1(factory, name, [leased, v1Record(IDS[1]!, 1)], meta);
    const db = await openBufferDb(factory, name);
    const records = await Promise.all(IDS.slice(0, 2).map((id) => db.get('events', id)));
    const keys = await db.getAllKeys('meta');
    db.close();
    expect(records.map((r) => r!.status)).toEqual(['pending', 'pending']);
    expect(records.some((r) => 'leaseUntil' in r! || 'leaseOwner' in r!)).toBe(false);
    expect(keys).toEqual(['cursor:ext:user_42']);
  });
});
