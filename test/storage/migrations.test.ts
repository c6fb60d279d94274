import { describe, expect, it } from 'vitest';
import { openBufferDb } from '../../src/storage/db.js';
import { DB_VERSION } from '../../src/storage/schema.js';
import { getEvents } from '../../src/storage/queue-store.js';
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
function writeVersion1(factory: IDBFactory, name: string, records: object[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      const events = db.createObjectStore('events', { keyPath: 'externalId' });
      events.createIndex('byStatus', ['status', 'seq']);
      db.createObjectStore('meta', { keyPath: 'key' });
      for (const record of records) events.put(record);
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
    const records = await getEvents(db, IDS);
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
    expect(server.events[0]!.timestamp).toBe('2025-06-02T09:15:27.123000+00:00');
  });
});
