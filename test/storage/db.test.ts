// src/storage/db.ts by fault injection in Node (fake-indexeddb): what an engine does to an open
// connection, produced on demand. The same behaviours run in real engines in
// test/browser/storage-faults.test.ts.
import { forceCloseDatabase } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import type { StorageError } from '../../src/errors.js';
import { unwrap } from 'idb';
import { Connection } from '../../src/storage/db.js';
import { DB_VERSION } from '../../src/storage/schema.js';
import { freshIndexedDB, uniqueDbName } from '../helpers/fresh-db.js';

/** Opens `name` at `version` with the raw factory (another tab, another library version). */
const rawOpen = (factory: IDBFactory, name: string, version: number, upgrade?: (db: IDBDatabase) => void) =>
  new Promise<{ db: IDBDatabase; blocked: boolean }>((resolve, reject) => {
    const request = factory.open(name, version);
    request.onupgradeneeded = () => upgrade?.(request.result);
    // Blocked: some connection did not let go on versionchange.
    request.onblocked = () => resolve({ db: undefined as never, blocked: true });
    request.onerror = () => reject(request.error);
    request.onsuccess = () => resolve({ db: request.result, blocked: false });
  });

const count = async (connection: Connection) => (await connection.get()).count('events');

describe('Connection: a connection closed or wiped under the library', () => {
  it('reopens after the browser force-closed it (close event), without a reload', async () => {
    const connection = new Connection(freshIndexedDB(), uniqueDbName());
    const first = await connection.get();
    forceCloseDatabase(unwrap(first));
    const second = await connection.get();
    expect(second).not.toBe(first);
    expect(await second.count('events')).toBe(0);
  });

  it('reopens after a connection closed with no close event yet: the first transaction() fails, the next call reopens', async () => {
    const connection = new Connection(freshIndexedDB(), uniqueDbName());
    const first = await connection.get();
    unwrap(first).close();
    expect(() => first.transaction('events')).toThrow(expect.objectContaining({ name: 'InvalidStateError' }));
    expect(await connection.get()).not.toBe(first);
    expect(await count(connection)).toBe(0);
  });

  it('keeps versionchange and close handlers on a connection met through a VersionError', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    await count(new Connection(factory, name));
    // A newer library version moved the database up.
    (await rawOpen(factory, name, DB_VERSION + 5)).db.close();
    const older = new Connection(factory, name);
    const db = await older.get();
    expect(db.version).toBe(DB_VERSION + 5);
    // An even newer tab is not blocked by the older tab's connection...
    const newest = await rawOpen(factory, name, DB_VERSION + 6);
    expect(newest.blocked).toBe(false);
    newest.db.close();
    // ...and a close under the older tab is survived too.
    const raw = unwrap(await older.get());
    const closed = new Promise((resolve) => raw.addEventListener('close', resolve));
    forceCloseDatabase(raw);
    await closed;
    expect(unwrap(await older.get())).not.toBe(raw);
    expect(await count(older)).toBe(0);
  });

  it('reports a database wiped while open (reopened empty) with the count it knew, once', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const lost: StorageError[] = [];
    const connection = new Connection(factory, name, (error) => lost.push(error));
    const db = await connection.get();
    connection.known = 7230;
    forceCloseDatabase(unwrap(db));
    await new Promise<void>((resolve, reject) => {
      const request = factory.deleteDatabase(name);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(request.error);
    });
    expect(await count(connection)).toBe(0);
    expect(lost.map((e) => [e.code, e.message])).toEqual([['storage', expect.stringMatching(/deleted by the browser.*7230 waiting events lost/)]]);
    // A fresh database with nothing known lost is not news.
    expect(lost).toHaveLength(1);
  });

  it('says nothing when a database it never held events in is created again', async () => {
    const factory = freshIndexedDB();
    const name = uniqueDbName();
    const lost: StorageError[] = [];
    const connection = new Connection(factory, name, (error) => lost.push(error));
    forceCloseDatabase(unwrap(await connection.get()));
    factory.deleteDatabase(name);
    await count(connection);
    expect(lost).toEqual([]);
  });
});
