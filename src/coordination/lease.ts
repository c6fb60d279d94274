import { storageError, type BufferDatabase } from '../storage/db.js';
import { META } from '../storage/schema.js';

/**
 * The cross-tab flush lease for browsers without Web Locks: one record in `meta`
 * (`{ owner, until }`) written with a compare-and-set inside one `readwrite` transaction, which
 * IndexedDB serialises across tabs and workers. A holder that dies simply stops renewing, and
 * the lease is free once `until` has passed.
 *
 * (This module speaks to the `meta` store directly, like the storage verbs do, so that the whole
 * check-and-take is one transaction.)
 */
export const FLUSH_LEASE_KEY = 'flush-lease';

export interface LeaseRecord {
  owner: string;
  until: number;
}

/** Takes (or renews) the lease for `owner` when it is free, expired or already ours. */
export async function tryTakeLease(db: BufferDatabase, owner: string, now: number, duration: number): Promise<boolean> {
  try {
    const tx = db.transaction(META, 'readwrite', { durability: 'strict' });
    const current = (await tx.store.get(FLUSH_LEASE_KEY))?.value as LeaseRecord | undefined;
    const free = !current || current.owner === owner || !(current.until > now);
    if (free) void tx.store.put({ key: FLUSH_LEASE_KEY, value: { owner, until: now + duration } satisfies LeaseRecord });
    await tx.done;
    return free;
  } catch (error) {
    throw storageError('flush (lease)', error);
  }
}

/** Gives the lease up, if it is still ours. */
export async function releaseLease(db: BufferDatabase, owner: string): Promise<void> {
  try {
    const tx = db.transaction(META, 'readwrite', { durability: 'strict' });
    const current = (await tx.store.get(FLUSH_LEASE_KEY))?.value as LeaseRecord | undefined;
    if (current?.owner === owner) void tx.store.delete(FLUSH_LEASE_KEY);
    await tx.done;
  } catch (error) {
    throw storageError('flush (lease release)', error);
  }
}
