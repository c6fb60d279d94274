import type { IDBPDatabase, IDBPTransaction, StoreNames } from 'idb';
import { BY_CUSTOMER, BY_FINGERPRINT, BY_NAME, BY_STATUS, BY_TIME, EVENTS, META, MIRROR, type BufferDBSchema, type EventRecord } from './schema.js';
import { customerKeyOf, fingerprintOf } from './serialize.js';

type UpgradeTx = IDBPTransaction<BufferDBSchema, StoreNames<BufferDBSchema>[], 'versionchange'>;

/**
 * Upgrades one version at a time from `oldVersion`. Never deletes a store that holds events and
 * never drops a record: later steps add indexes and backfill the fields they index.
 */
export function upgrade(db: IDBPDatabase<BufferDBSchema>, oldVersion: number, newVersion: number | null, tx: UpgradeTx): void {
  // Schema changes run at once; a step's record rewrite starts after the one before has ended.
  let done: Promise<void> = Promise.resolve();
  for (let version = oldVersion + 1; version <= (newVersion ?? oldVersion); version++) done = STEPS[version]!(db, tx, done) ?? done;
}

const STEPS: Record<number, (db: IDBPDatabase<BufferDBSchema>, tx: UpgradeTx, before: Promise<void>) => Promise<void> | void> = {
  // Version 1: the queue alone.
  1(db) {
    const events = db.createObjectStore(EVENTS, { keyPath: 'externalId' });
    events.createIndex(BY_STATUS, ['status', 'seq']);
    db.createObjectStore(META, { keyPath: 'key' });
  },
  // Version 2: matching and query indexes on events (backfilling their fields), and the mirror.
  2(db, tx, before) {
    const events = tx.objectStore(EVENTS);
    events.createIndex(BY_CUSTOMER, ['customerKey', 'timestampMs']);
    events.createIndex(BY_FINGERPRINT, 'fingerprint');
    const mirror = db.createObjectStore(MIRROR, { keyPath: 'id' });
    mirror.createIndex(BY_CUSTOMER, ['customerKey', 'timestampMs']);
    mirror.createIndex(BY_NAME, ['name', 'timestampMs']);
    mirror.createIndex(BY_FINGERPRINT, 'fingerprints', { multiEntry: true });
    mirror.createIndex(BY_TIME, 'timestampMs');
    // Version-1 records lack customerKey and fingerprint: filled in place.
    return rewrite(tx, before, (r) => {
      const customerKey = customerKeyOf(r);
      return r.customerKey === undefined || r.fingerprint === undefined ? { ...r, customerKey, fingerprint: fingerprintOf({ ...r, customerKey }) } : undefined;
    });
  },
  // Version 3: a flush's batch is one claim record in `meta`; per-event leases (a stored `sending`
  // status, leaseUntil, leaseOwner) and the old claim/reservation records go.
  3(_db, tx, before) {
    const meta = tx.objectStore(META);
    for (const prefix of ['claim:', 'reserve:']) void meta.delete(IDBKeyRange.bound(prefix, `${prefix}\uffff`));
    void meta.delete('waiting-token');
    return rewrite(tx, before, ({ leaseUntil, leaseOwner, ...r }: EventRecord & { leaseUntil?: number; leaseOwner?: string | null }) =>
      leaseUntil !== undefined || leaseOwner !== undefined || r.status === 'sending'
        ? { ...r, status: r.status === 'sending' ? 'pending' : r.status }
        : undefined,
    );
  },
};

/**
 * Rewrites the events `fix` changes (undefined: kept), after the step before has ended; only the
 * cursor's own requests are awaited, so the upgrade transaction stays alive.
 */
async function rewrite(tx: UpgradeTx, before: Promise<void>, fix: (record: EventRecord) => EventRecord | undefined): Promise<void> {
  await before;
  for (let cursor = await tx.objectStore(EVENTS).openCursor(); cursor; cursor = await cursor.continue()) {
    const next = fix(cursor.value as EventRecord);
    if (next) await cursor.update(next);
  }
}
