import type { Clock } from '../options.js';
import type { Connection } from '../storage/db.js';
import { isQuotaError, releaseLease, takeLease } from '../storage/queue.js';
import { env } from '../env.js';

export interface LeaseOptions {
  /** The buffer closing: aborts the flush's signal too. */
  signal: AbortSignal;
  connection: Connection;
  owner: string;
  duration: number;
  clock: Clock;
}

interface Locks {
  request<T>(name: string, options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

const held = new WeakMap<object, Set<string>>();

/** The abort reason of a flush whose lease went to another tab. */
export const LEASE_LOST = 'lease-lost';

/**
 * One flush at a time per database, across tabs and workers: a Web Lock where present (the browser
 * frees it when its holder goes away); otherwise a lease in `meta`, renewed while the flush runs
 * and free once a dead holder stops renewing it. A holder that finds its lease taken (it was frozen
 * past it) is told through `lost` (which closing the buffer aborts too), and must stop. Inside one
 * realm, a set of held names.
 */
export async function withFlushLock<T>(
  factory: object,
  dbName: string,
  fn: (lost: AbortSignal) => Promise<T>,
  lease: LeaseOptions,
): Promise<{ ran: true; value: T } | { ran: false }> {
  const lost = new AbortController();
  const stop = () => lost.abort(lease.signal.reason);
  if (lease.signal.aborted) stop();
  else lease.signal.addEventListener('abort', stop, { once: true });
  const locks = env().navigator?.locks as Locks | undefined;
  if (typeof locks?.request === 'function') {
    return locks.request(`polar-event-buffer:flush:${dbName}`, { ifAvailable: true }, async (lock) =>
      lock ? { ran: true, value: await fn(lost.signal) } : { ran: false },
    );
  }
  const names = held.get(factory) ?? new Set<string>();
  held.set(factory, names);
  if (names.has(dbName)) return { ran: false };
  names.add(dbName);
  const { connection, owner, duration, clock } = lease;
  let timer: unknown;
  try {
    // A full disk cannot store the lease: flush anyway (a second flusher only sends duplicates).
    const taken = await takeLease(await connection.get(), owner, clock.now(), duration).catch((error: unknown) => {
      if (isQuotaError(error)) return true;
      throw error;
    });
    if (!taken) return { ran: false };
    const renew = (): void => {
      timer = clock.setTimeout(
        async () => {
          const kept = await takeLease(await connection.get(), owner, clock.now(), duration).catch(() => true);
          if (!kept) lost.abort(LEASE_LOST);
          else if (timer !== undefined) renew();
        },
        Math.max(1, duration / 3),
      );
    };
    renew();
    try {
      return { ran: true, value: await fn(lost.signal) };
    } finally {
      clock.clearTimeout(timer);
      timer = undefined;
      await releaseLease(await connection.get(), owner).catch(() => undefined);
    }
  } finally {
    names.delete(dbName);
  }
}
