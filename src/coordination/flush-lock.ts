import type { Clock } from '../options.js';
import type { Connection } from '../storage/db.js';
import { releaseLease, tryTakeLease } from './lease.js';

/**
 * One flush at a time per database, across tabs and workers:
 * - a Web Lock (`navigator.locks`, `ifAvailable`) where present; the browser frees it when the
 *   holder's tab or worker goes away;
 * - otherwise, when `lease` is given, an IndexedDB lease record in `meta` with an expiry
 *   (renewed while the flush runs; a holder that died is taken over once it has expired);
 * - otherwise one holder per database inside this realm.
 */
interface LockManagerLike {
  request<T>(name: string, options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

export interface LeaseOptions {
  connection: Connection;
  /** This buffer's id, written as the lease owner. */
  owner: string;
  /** ms a lease lasts without renewal (the buffer's `leaseDuration`). */
  duration: number;
  clock: Clock;
}

const held = new WeakMap<object, Set<string>>();

function lockManager(): LockManagerLike | undefined {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return nav?.locks && typeof nav.locks.request === 'function' ? nav.locks : undefined;
}

export async function withFlushLock<T>(
  factory: object,
  dbName: string,
  fn: () => Promise<T>,
  lease?: LeaseOptions,
): Promise<{ ran: true; value: T } | { ran: false }> {
  const locks = lockManager();
  if (locks) {
    return locks.request(`polar-event-buffer:flush:${dbName}`, { ifAvailable: true }, async (lock) =>
      lock ? { ran: true as const, value: await fn() } : { ran: false as const },
    );
  }
  let names = held.get(factory);
  if (!names) held.set(factory, (names = new Set()));
  if (names.has(dbName)) return { ran: false };
  names.add(dbName);
  try {
    if (!lease) return { ran: true, value: await fn() };
    return await withLease(lease, fn);
  } finally {
    names.delete(dbName);
  }
}

async function withLease<T>(lease: LeaseOptions, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
  const { connection, owner, duration, clock } = lease;
  if (!(await tryTakeLease(await connection.get(), owner, clock.now(), duration))) return { ran: false };
  // Renew at a third of the duration, so a slow flush keeps it and a dead one loses it soon.
  let timer: unknown;
  let stopped = false;
  const renew = (): void => {
    timer = clock.setTimeout(() => {
      if (stopped) return;
      connection
        .get()
        .then((db) => tryTakeLease(db, owner, clock.now(), duration))
        .catch(() => undefined)
        .finally(() => {
          if (!stopped) renew();
        });
    }, Math.max(1, Math.floor(duration / 3)));
  };
  renew();
  try {
    return { ran: true, value: await fn() };
  } finally {
    stopped = true;
    clock.clearTimeout(timer);
    await connection
      .get()
      .then((db) => releaseLease(db, owner))
      .catch(() => undefined);
  }
}
