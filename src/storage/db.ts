import { unwrap, wrap, type IDBPDatabase } from 'idb';
import { StorageError } from '../errors.js';
import { upgrade } from './migrations.js';
import { DB_VERSION, type BufferDBSchema } from './schema.js';

/**
 * The only module that imports `idb`. Opens the database through the stepwise migrations with an
 * injected IDBFactory and keeps one lazily (re)opened connection:
 * - `versionchange` (another tab upgrades or deletes the database): close at once so it is not
 *   blocked, and reopen on the next use;
 * - `close` (the browser terminated the connection): drop it and reopen on the next use.
 *
 * Transaction lifetime: a transaction commits as soon as no request is pending at the end of a
 * task, so code inside one awaits only IndexedDB requests of that transaction, never `fetch`,
 * timers or other promises. The store modules keep to that rule.
 */
export type BufferDatabase = IDBPDatabase<BufferDBSchema>;

export { unwrap, wrap };

export interface ConnectionEvents {
  /** Another connection asked for a newer version (or a delete); we closed ours. */
  onVersionChange?: (newVersion: number | null) => void;
  /** Our open waits for another tab to close its older connection. */
  onBlocked?: () => void;
}

/** Opens `name` at DB_VERSION with `factory`, running migrations from whatever version is there. */
export function openBufferDb(factory: IDBFactory, name: string, events: ConnectionEvents = {}): Promise<BufferDatabase> {
  let request: IDBOpenDBRequest;
  try {
    request = factory.open(name, DB_VERSION);
  } catch (error) {
    return Promise.reject(new StorageError('open', `could not open database "${name}" (${describe(error)}).`, { cause: error }));
  }
  const opened = wrap(request) as unknown as Promise<BufferDatabase>;
  request.addEventListener('upgradeneeded', (event) => {
    upgrade(
      wrap(request.result) as unknown as BufferDatabase,
      event.oldVersion,
      event.newVersion,
      wrap(request.transaction!) as never,
    );
  });
  request.addEventListener('blocked', () => events.onBlocked?.());
  return opened.then(
    (db) => db,
    (error: unknown) => {
      const err = error as { name?: string };
      if (err?.name === 'VersionError') {
        // A newer version (another tab's newer library) upgraded the database. Migrations only
        // add, so open it at its own version and keep working when our stores are all there.
        return openNewer(factory, name).catch(() => {
          throw new StorageError(
            'open',
            `database "${name}" was upgraded by a newer version of polar-event-buffer in another tab; reload this page to use it.`,
            { cause: error },
          );
        });
      }
      throw new StorageError('open', `could not open database "${name}" (${describe(error)}).`, { cause: error });
    },
  );
}

/** Opens `name` at whatever (newer) version it has, if it holds every store and index this version uses. */
async function openNewer(factory: IDBFactory, name: string): Promise<BufferDatabase> {
  const db = (await wrap(factory.open(name))) as unknown as BufferDatabase;
  const raw = db as unknown as IDBDatabase;
  const needed: Record<string, string[]> = { events: ['byStatus', 'byCustomer', 'byFingerprint'], mirror: [], meta: [] };
  try {
    const tx = raw.transaction(Object.keys(needed), 'readonly');
    for (const [store, indexes] of Object.entries(needed)) {
      const names = tx.objectStore(store).indexNames;
      for (const index of indexes) if (!names.contains(index)) throw new Error(`index ${store}.${index} is missing`);
    }
  } catch (error) {
    raw.close();
    throw error;
  }
  return db;
}

/** One lazily opened connection that reopens after a versionchange or an abnormal close. */
export class Connection {
  readonly #factory: IDBFactory;
  readonly #name: string;
  readonly #events: ConnectionEvents;
  #db: Promise<BufferDatabase> | undefined;
  #closed = false;

  constructor(factory: IDBFactory, name: string, events: ConnectionEvents = {}) {
    this.#factory = factory;
    this.#name = name;
    this.#events = events;
  }

  get name(): string {
    return this.#name;
  }

  /** The open database; opens (or reopens) it when needed. */
  get(): Promise<BufferDatabase> {
    if (this.#closed) return Promise.reject(new StorageError('open', `database "${this.#name}" connection was closed.`));
    if (!this.#db) {
      const pending = openBufferDb(this.#factory, this.#name, this.#events).then((db) => {
        const raw = db as unknown as IDBDatabase;
        raw.addEventListener('versionchange', (event) => {
          db.close();
          if (this.#db === pending) this.#db = undefined;
          this.#events.onVersionChange?.((event as IDBVersionChangeEvent).newVersion);
        });
        raw.addEventListener('close', () => {
          if (this.#db === pending) this.#db = undefined;
        });
        return db;
      });
      pending.catch(() => {
        if (this.#db === pending) this.#db = undefined;
      });
      this.#db = pending;
    }
    return this.#db;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const db = this.#db;
    this.#db = undefined;
    if (db) {
      try {
        (await db).close();
      } catch {
        // It never opened: nothing to close.
      }
    }
  }
}

export function describe(error: unknown): string {
  if (error && typeof error === 'object') {
    const e = error as { name?: string; message?: string };
    return [e.name, e.message].filter(Boolean).join(': ') || String(error);
  }
  return String(error);
}

/** Wraps an IndexedDB failure in a StorageError that says what to do. */
export function storageError(operation: string, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const name = (error as { name?: string } | null)?.name;
  if (name === 'QuotaExceededError') {
    return new StorageError(
      operation,
      'the browser refused the write because the storage quota is exceeded; nothing of this write was stored. ' +
        'Free space (flush, purgeDeadLetters(), a smaller retention) or ask for persistent storage.',
      { cause: error },
    );
  }
  return new StorageError(operation, `${describe(error)}. The transaction was rolled back; nothing of it was stored.`, {
    cause: error,
  });
}
