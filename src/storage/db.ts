import { unwrap, wrap, type IDBPDatabase } from 'idb';
import { PolarEventBufferError, StorageError } from '../errors.js';
import { upgrade } from './migrations.js';
import { DB_VERSION, type BufferDBSchema } from './schema.js';

/**
 * The only module that imports `idb`. One lazily (re)opened connection per buffer: closed at once
 * on `versionchange` (so another tab's upgrade is not blocked) and reopened on the next use, also
 * after the browser terminated it. Inside a transaction, await only its own requests: it commits
 * as soon as a task ends with none pending.
 */
export type BufferDatabase = IDBPDatabase<BufferDBSchema>;

export { unwrap };

export class Connection {
  readonly #factory: IDBFactory;
  readonly #name: string;
  #db: Promise<BufferDatabase> | undefined;
  #closed = false;

  constructor(factory: IDBFactory, name: string) {
    this.#factory = factory;
    this.#name = name;
  }

  get(): Promise<BufferDatabase> {
    if (this.#closed) return Promise.reject(new StorageError('open', `"${this.#name}" is closed`));
    if (!this.#db) {
      const drop = () => {
        if (this.#db === pending) this.#db = undefined;
      };
      let pending: Promise<BufferDatabase>;
      try {
        const request = this.#factory.open(this.#name, DB_VERSION);
        request.onupgradeneeded = (e) => upgrade(wrap(request.result) as BufferDatabase, e.oldVersion, e.newVersion, wrap(request.transaction!) as never);
        pending = (wrap(request) as unknown as Promise<BufferDatabase>).then((db) => {
          const idb = unwrap(db);
          idb.onversionchange = () => (db.close(), drop());
          idb.onclose = drop;
          return db;
        });
      } catch (error) {
        pending = Promise.reject(error);
      }
      this.#db = pending = pending
        .catch((error: unknown) => {
          // Another tab runs a newer version of this library: go on if its schema keeps ours.
          if ((error as Error)?.name !== 'VersionError') throw error;
          return (wrap(this.#factory.open(this.#name)) as unknown as Promise<BufferDatabase>).then((db) => {
            try {
              const tx = unwrap(db).transaction(['events', 'mirror', 'meta']);
              for (const index of ['byStatus', 'byCustomer', 'byFingerprint']) tx.objectStore('events').index(index);
              return db;
            } catch {
              db.close();
              throw new StorageError('open', `"${this.#name}" was changed by a newer version in another tab: reload`);
            }
          });
        })
        .catch((error: unknown) => {
          drop();
          throw storageError('open', error);
        });
    }
    return this.#db;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const db = this.#db;
    this.#db = undefined;
    (await db?.catch(() => undefined))?.close();
  }
}

const describe = (error: unknown): string => {
  const e = error as { name?: string; message?: string } | null;
  return [e?.name, e?.message].filter(Boolean).join(': ') || String(error);
};

/** An IndexedDB failure as a StorageError; an error of our own family (a refusal inside a transaction) passes as is. */
export function storageError(operation: string, error: unknown): PolarEventBufferError {
  return error instanceof PolarEventBufferError ? error : new StorageError(operation, describe(error), { cause: error });
}

/** Opens `name` through the migrations (tests and tools; the buffer keeps a Connection). */
export const openBufferDb = (factory: IDBFactory, name: string): Promise<BufferDatabase> => new Connection(factory, name).get();
