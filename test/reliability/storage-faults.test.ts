/**
 * Suite 4: storage faults. QuotaExceededError on write (the caller gets a StorageError and nothing
 * is half written), the database deleted or upgraded from under an open buffer, a corrupted record
 * in the store (quarantined as a dead letter, reported, the rest goes on), IndexedDB missing.
 */
import { IDBFactory, IDBObjectStore as FakeObjectStore } from 'fake-indexeddb';
import { afterEach, describe, expect, test } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { NoIndexedDBError, StorageError, isPolarEventBufferError } from '../../src/errors.js';
import { httpTransport } from '../../src/transport/http.js';
import { DB_VERSION } from '../../src/storage/schema.js';
import type { EventBuffer } from '../../src/types.js';
import { autoClose } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const startServer = useMockPolar();
const closeLater = autoClose();
const DB = 'storage-faults';

async function setup(factory = new IDBFactory()) {
  const server = await startServer();
  const buffer = createEventBuffer({
    transport: httpTransport({ baseUrl: server.url }),
    indexedDB: factory,
    dbName: DB,
    autoFlush: false,
    retry: { retries: 0, minTimeout: 1, maxTimeout: 5 },
  }) as unknown as EventBuffer;
  closeLater(buffer);
  const errors: unknown[] = [];
  buffer.on('error', (e) => errors.push(e));
  return { server, buffer, factory, errors };
}

const event = (i: number) => ({ name: 'api_call', externalCustomerId: 'cust_q', metadata: { i } });

/** Every record in the `events` store, read with raw IndexedDB. */
function readAll(factory: IDBFactory, store = 'events'): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const open = factory.open(DB);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const req = db.transaction(store, 'readonly').objectStore(store).getAll();
      req.onsuccess = () => {
        db.close();
        resolve(req.result as Record<string, unknown>[]);
      };
      req.onerror = () => reject(req.error);
    };
  });
}

function putRaw(factory: IDBFactory, record: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const open = factory.open(DB);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction('events', 'readwrite');
      tx.objectStore('events').put(record);
      tx.oncomplete = () => {
        db.close();
        resolve();
      };
      tx.onerror = () => reject(tx.error);
    };
    open.onerror = () => reject(open.error);
  });
}

const originalPut = FakeObjectStore.prototype.put;
afterEach(() => {
  FakeObjectStore.prototype.put = originalPut;
});

/** The n-th put from now on (1-based) fails like a full disk: a QuotaExceededError. */
function quotaExceededOnPut(n: number, how: 'throw' | 'abort'): void {
  let puts = 0;
  FakeObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
    puts++;
    if (puts === n) {
      if (how === 'throw') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      const request = originalPut.apply(this, args);
      this.transaction.abort();
      return request;
    }
    return originalPut.apply(this, args);
  } as IDBObjectStore['put'];
}

describe('storage faults', () => {
  test.each(['throw', 'abort'] as const)(
    'a QuotaExceededError on the third write of a trackMany (%s) rejects with StorageError and stores none of its events',
    async (how) => {
      const { buffer, factory } = await setup();
      await buffer.track(event(0) as never);
      quotaExceededOnPut(3, how);
      const outcome = await buffer.trackMany([1, 2, 3, 4, 5].map(event) as never).catch((e: unknown) => e);
      FakeObjectStore.prototype.put = originalPut;
      expect(outcome).toBeInstanceOf(StorageError);
      if (how === 'throw') expect(String((outcome as Error).message)).toMatch(/quota/i);
      const stored = await readAll(factory);
      expect(stored.map((r) => (r['metadata'] as { i: number }).i)).toEqual([0]);
      // The buffer goes on: the next track is stored.
      await buffer.track(event(6) as never);
      expect((await buffer.stats()).pending).toBe(2);
    },
  );

  test('a full disk: a flush still delivers, claiming in memory, and stops once an answer cannot be stored', async () => {
    const { buffer, server, errors } = await setup();
    const tracked = await buffer.trackMany([1, 2, 3].map(event) as never);
    // Every write fails from now on, as on a full disk; reads still work.
    FakeObjectStore.prototype.put = (() => {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    }) as IDBObjectStore['put'];
    const report = await buffer.flush();
    expect(report).toMatchObject({ sent: 3, stoppedBy: 'storage-full', remaining: 3 });
    expect(server.storedExternalIds().sort()).toEqual(tracked.map((e) => e.externalId).sort());
    expect(errors.some((e) => e instanceof StorageError)).toBe(true);
    // Room again: the resend is counted as duplicates by the server and stored as sent.
    FakeObjectStore.prototype.put = originalPut;
    expect(await buffer.flush()).toMatchObject({ sent: 3, duplicates: 3, remaining: 0 });
    expect(server.stored()).toHaveLength(3);
  });

  test('the database deleted from under an open buffer: the buffer reopens a new one and keeps tracking and flushing', async () => {
    const { buffer, factory, server } = await setup();
    await buffer.trackMany([1, 2, 3].map(event) as never);
    await new Promise<void>((resolve, reject) => {
      const del = factory.deleteDatabase(DB);
      del.onsuccess = () => resolve();
      del.onerror = () => reject(del.error);
      del.onblocked = () => reject(new Error('deleteDatabase was blocked by the open buffer'));
    });
    const fresh = await buffer.trackMany([4, 5].map(event) as never);
    const report = await buffer.flush();
    expect(report.sent).toBe(2);
    expect(server.storedExternalIds()).toEqual(fresh.map((e) => e.externalId));
  });

  /** Another tab opens the database at a newer version; `upgrade` runs in its versionchange transaction. */
  function upgradeFromElsewhere(factory: IDBFactory, upgrade: (db: IDBDatabase) => void = () => undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const open = factory.open(DB, DB_VERSION + 1);
      open.onupgradeneeded = () => upgrade(open.result);
      open.onsuccess = () => {
        open.result.close();
        resolve();
      };
      open.onerror = () => reject(open.error);
      open.onblocked = () => reject(new Error('the upgrade was blocked by the open buffer'));
    });
  }

  test('the database upgraded by a newer version that keeps our stores: the open buffer reopens it and loses nothing', async () => {
    const { buffer, factory, server } = await setup();
    const before = await buffer.trackMany([1, 2].map(event) as never);
    await upgradeFromElsewhere(factory, (db) => db.createObjectStore('added-by-a-newer-version'));
    const after = await buffer.track(event(3) as never);
    expect((await buffer.flush()).sent).toBe(3);
    expect(server.storedExternalIds()).toEqual([...before, after].map((e) => e.externalId));
  });

  test('the database upgraded by a newer version that dropped a store we need: track() rejects with a StorageError that says to reload, and the waiting events stay in the database', async () => {
    const { buffer, factory } = await setup();
    await buffer.trackMany([1, 2].map(event) as never);
    await upgradeFromElsewhere(factory, (db) => db.deleteObjectStore('mirror'));
    const outcome = await buffer.track(event(3) as never).catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(StorageError);
    expect(String((outcome as Error).message)).toMatch(/reload/);
    expect((await readAll(factory)).length).toBe(2);
  });

  test('a corrupted record in the store is quarantined as a dead letter ("corrupted record"), reported through "error", and the other events are delivered', async () => {
    const { buffer, factory, server, errors } = await setup();
    const good = await buffer.trackMany([1, 2, 3].map(event) as never);
    await putRaw(factory, {
      externalId: 'corrupt-1',
      seq: '0', // before every real event: it is claimed first
      status: 'pending',
      name: 42,
      timestampMs: 'yesterday',
      metadata: null,
      nextAttemptAt: 0,
    });
    const report = await buffer.flush();
    expect(report.sent).toBe(3);
    expect(server.storedExternalIds()).toEqual(good.map((e) => e.externalId));
    const dead = await buffer.deadLetters();
    expect(dead.map((d) => d.externalId)).toEqual(['corrupt-1']);
    expect(dead[0]!.error).toMatch(/corrupted record/);
    expect(errors.some((e) => isPolarEventBufferError(e) && /corrupted record/.test((e as Error).message))).toBe(true);
  });

  test('IndexedDB missing entirely: createEventBuffer() throws NoIndexedDBError', async () => {
    const g = globalThis as { indexedDB?: IDBFactory | undefined };
    const saved = g.indexedDB;
    delete g.indexedDB;
    try {
      expect(() => createEventBuffer({ transport: httpTransport({ baseUrl: 'http://127.0.0.1:9' }) })).toThrow(NoIndexedDBError);
    } finally {
      g.indexedDB = saved;
    }
  });
});
