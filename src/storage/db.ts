import { unwrap, wrap, type IDBPDatabase } from 'idb';
import { PolarEventBufferError, StorageError } from '../errors.js';
import { upgrade } from './migrations.js';
import { DB_VERSION, type BufferDBSchema } from './schema.js';

/**
 * The only module that imports `idb`. One lazily (re)opened connection per buffer: closed at once
 * on `versionchange` (so another tab's upgrade is not blocked) and reopened on the next use, also
 * after the browser closed it under us (the `close` event, or `InvalidStateError` from a
 * transaction before that event arrives). Inside a transaction, await only its own requests: it
 * commits as soon as a task ends with none pending.
 */
export type BufferDatabase = IDBPDatabase<BufferDBSchema>;

/** The IDBTransaction under idb's wrapper: a request on it needs no promise (the raw fast path). */
export const rawTx = (tx: object): IDBTransaction => unwrap(tx as never) as unknown as IDBTransaction;

const closedUnderUs = new WeakSet<object>();

/** Whether `error` (or its cause) is a transaction refused because the connection was closed under us: the next call reopens. */
export const connectionWasClosed = (error: unknown): boolean =>
  closedUnderUs.has(error as object) || closedUnderUs.has((error as { cause?: object } | null)?.cause as object);

export class Connection {
  readonly #factory: IDBFactory;
  readonly #name: string;
  readonly #onLost: ((error: StorageError) => void) | undefined;
  #db: Promise<BufferDatabase> | undefined;
  #closed = false;
  /** A connection of ours existed before: an open that has to create the database finds it wiped. */
  #opened = false;
  /** What the buffer last knew the database held (waiting and in-flight events): what a wipe loses. */
  known = 0;
  /** The open request in flight, and a count of release() calls (an open from before one is not retried). */
  #request: IDBOpenDBRequest | undefined;
  #releases = 0;

  /** `onLost`: told when the database vanished under us (the browser wiped it) and was created again empty. */
  constructor(factory: IDBFactory, name: string, onLost?: (error: StorageError) => void) {
    this.#factory = factory;
    this.#name = name;
    this.#onLost = onLost;
  }

  get(): Promise<BufferDatabase> {
    if (this.#closed) return Promise.reject(new StorageError('open', `"${this.#name}" is closed`));
    if (!this.#db) {
      let pending: Promise<BufferDatabase>;
      const drop = () => {
        if (this.#db === pending) this.#db = undefined;
      };
      const releases = this.#releases;
      this.#db = pending = this.#open(drop)
        // An open the browser aborted (it was closing every connection: storage being cleared) is tried once more.
        .catch((error: unknown) => ((error as Error)?.name === 'AbortError' && releases === this.#releases ? this.#open(drop) : Promise.reject(error)))
        .catch((error: unknown) => {
          drop();
          throw storageError('open', error);
        });
    }
    return this.#db;
  }

  #open(drop: () => void): Promise<BufferDatabase> {
    /** Both ways of opening end here: whatever closes the connection makes the next use reopen. */
    const adopt = (db: BufferDatabase): BufferDatabase => {
      const raw = unwrap(db);
      raw.onversionchange = () => (db.close(), drop());
      raw.onclose = drop;
      // A connection the browser closed throws InvalidStateError on transaction() before its
      // `close` event is delivered: that call fails (marked, so a write may be tried again),
      // the next one reopens. The method is looked up per call, as a plain call would.
      const proto = Object.getPrototypeOf(raw) as IDBDatabase;
      raw.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
        try {
          return proto.transaction.apply(this, args);
        } catch (error) {
          if ((error as Error)?.name === 'InvalidStateError') {
            drop();
            if (typeof error === 'object' && error) closedUnderUs.add(error);
          }
          throw error;
        }
      } as IDBDatabase['transaction'];
      this.#opened = true;
      return db;
    };
    let opened: Promise<BufferDatabase>;
    try {
      const request = this.#factory.open(this.#name, DB_VERSION);
      this.#request = request;
      const done = () => {
        if (this.#request === request) this.#request = undefined;
      };
      request.addEventListener('success', done);
      request.addEventListener('error', done);
      request.onupgradeneeded = (e) => {
        if (e.oldVersion === 0 && this.#opened && this.known > 0) {
          const lost = this.known;
          this.known = 0;
          this.#onLost?.(
            new StorageError('open', `"${this.#name}" was deleted by the browser while open (storage cleared or corrupt): ${lost} waiting events lost`),
          );
        }
        upgrade(wrap(request.result) as BufferDatabase, e.oldVersion, e.newVersion, wrap(request.transaction!) as never);
      };
      opened = (wrap(request) as unknown as Promise<BufferDatabase>).then(adopt);
    } catch (error) {
      opened = Promise.reject(error);
    }
    return opened.catch((error: unknown) => {
      // Another tab runs a newer version of this library: go on if its schema keeps ours.
      if ((error as Error)?.name !== 'VersionError') throw error;
      return (wrap(this.#factory.open(this.#name)) as unknown as Promise<BufferDatabase>).then((db) => {
        try {
          const tx = unwrap(db).transaction(['events', 'mirror', 'meta']);
          for (const index of ['byStatus', 'byCustomer', 'byFingerprint']) tx.objectStore('events').index(index);
        } catch {
          db.close();
          throw new StorageError('open', `"${this.#name}" was changed by a newer version in another tab: reload`);
        }
        return adopt(db);
      });
    });
  }

  /**
   * The page is going away (pagehide): let go of the database so that no later page waits on this
   * one, which may be frozen in a back/forward cache (WebKit keeps a page that was creating the
   * database holding it: the next page's open hangs). An upgrade still running is aborted, an open
   * connection closed once its transactions end; the next use reopens.
   */
  release(): void {
    this.#releases++;
    const db = this.#db;
    this.#db = undefined;
    try {
      this.#request?.transaction?.abort();
    } catch {
      // the upgrade already ended
    }
    void db?.then(
      (d) => d.close(),
      () => undefined,
    );
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
