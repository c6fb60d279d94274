/**
 * One flush at a time per database: a Web Lock (`navigator.locks`, `ifAvailable`) where present,
 * which also covers other tabs and workers; otherwise one holder per database inside this realm.
 * (Without Web Locks, two tabs may flush at once; the per-event leases keep their batches apart.)
 */
interface LockManagerLike {
  request<T>(name: string, options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
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
    return { ran: true, value: await fn() };
  } finally {
    names.delete(dbName);
  }
}
