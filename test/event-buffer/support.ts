// Helpers shared by the core tests (test/event-buffer, test/flush, test/storage, test/options).
import { afterEach } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import type { EventBufferOptions, Clock } from '../../src/options.js';
import { httpTransport } from '../../src/transport/http.js';
import { openBufferDb, type BufferDatabase } from '../../src/storage/db.js';
import type { EventRecord } from '../../src/storage/schema.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import type { EventBuffer } from '../../src/types.js';
import type { Transport } from '../../src/transport/transport.js';

/** Polar's real wire format: microseconds and a +00:00 offset. */
export const WIRE_TIME = '2025-06-02T09:15:27.123456+00:00';

/**
 * A clock whose short timers (up to `maxJump` ms: backoff and Retry-After waits) run at once, on a
 * real 0 ms timeout, while its `now` jumps ahead by the delay: waits happen in virtual time, so a
 * test can see how long the buffer chose to wait. Longer timers (the flush lease's renewal, the
 * flush interval) fire only when the test calls advance().
 */
export class JumpClock implements Clock {
  current: number;
  readonly waits: number[] = [];
  readonly #held = new Map<number, { at: number; callback: () => void }>();
  #next = 1;
  constructor(
    start = Date.now(),
    readonly maxJump = 15_000,
  ) {
    this.current = start;
  }
  now(): number {
    return this.current;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    if (ms > this.maxJump) {
      const id = this.#next++;
      this.#held.set(id, { at: this.current + ms, callback });
      return { held: id };
    }
    this.waits.push(ms);
    return globalThis.setTimeout(() => {
      this.current += ms;
      callback();
    }, 0);
  }
  clearTimeout(handle: unknown): void {
    if (handle && typeof handle === 'object' && 'held' in handle) this.#held.delete((handle as { held: number }).held);
    else globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>);
  }
  advance(ms: number): void {
    this.current += ms;
    for (const [id, timer] of [...this.#held]) {
      if (timer.at > this.current) continue;
      this.#held.delete(id);
      timer.callback();
    }
  }
}

/** A clock whose timers fire only when the test advances it. */
export class ManualClock implements Clock {
  current: number;
  #next = 1;
  readonly timers = new Map<number, { at: number; ms: number; callback: () => void }>();
  constructor(start = Date.now()) {
    this.current = start;
  }
  now(): number {
    return this.current;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.timers.set(id, { at: this.current + ms, ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time on and runs the timers that came due (in due order). */
  advance(ms: number): void {
    this.current += ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= this.current).sort((a, b) => a[1].at - b[1].at);
      if (due.length === 0) return;
      const [id, timer] = due[0]!;
      this.timers.delete(id);
      timer.callback();
    }
  }
}

/** Closes every buffer made through it after each test. */
export function bufferFactory() {
  const open: EventBuffer<any>[] = [];
  afterEach(async () => {
    for (const b of open.splice(0).reverse()) await b.close();
  });
  return function make(server: MockPolarServer | undefined, options: Partial<EventBufferOptions<any>> & { indexedDB: IDBFactory }) {
    const buffer = createEventBuffer({
      transport: server ? httpTransport({ baseUrl: server.url, timeout: 5000 }) : { ingest: async () => ({ inserted: 0, duplicates: 0 }) },
      autoFlush: false,
      retry: { retries: 3, minTimeout: 1, maxTimeout: 20, randomize: false },
      ...options,
    } as EventBufferOptions<any>);
    open.push(buffer);
    return buffer;
  };
}

/** Reads stored records straight from IndexedDB (a separate connection). */
export async function readRecords(factory: IDBFactory, dbName: string, ids: string[]): Promise<EventRecord[]> {
  const db = await openBufferDb(factory, dbName);
  try {
    return (await Promise.all(ids.map((id) => db.get('events', id)))).filter((r): r is EventRecord => r !== undefined);
  } finally {
    db.close();
  }
}

export async function withDb<T>(factory: IDBFactory, dbName: string, fn: (db: BufferDatabase) => Promise<T>): Promise<T> {
  const db = await openBufferDb(factory, dbName);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}

export interface TxLog {
  mode: IDBTransactionMode;
  stores: string[];
  durability: string | undefined;
  completedAt: number | null;
}

/**
 * Records every IndexedDB transaction opened while installed (mode, stores, durability, and the
 * order in which each completed). Uninstalled after each test.
 */
export function spyTransactions() {
  const log: TxLog[] = [];
  let completions = 0;
  const proto = IDBDatabase.prototype;
  const original = proto.transaction;
  let installed = false;
  afterEach(() => {
    if (installed) proto.transaction = original;
    installed = false;
    log.length = 0;
  });
  return {
    log,
    install() {
      installed = true;
      proto.transaction = function (this: IDBDatabase, stores: string | string[], mode?: IDBTransactionMode, options?: IDBTransactionOptions) {
        const tx = original.call(this, stores, mode, options);
        const entry: TxLog = {
          mode: mode ?? 'readonly',
          stores: Array.isArray(stores) ? [...stores] : [stores],
          durability: options?.durability,
          completedAt: null,
        };
        log.push(entry);
        tx.addEventListener('complete', () => {
          entry.completedAt = ++completions;
        });
        return tx;
      } as typeof original;
    },
  };
}

/** A track() input in the shape users write. */
export function input(n: number, extra: Record<string, unknown> = {}) {
  return { name: 'api.call', externalCustomerId: 'user_42', metadata: { n, model: 'gpt-4o' }, ...extra };
}

/**
 * A transport whose ingest stops on the wire: `onWire` resolves when a batch is sent, and the
 * server's answer (all inserted) comes back only after `release()`. For what a batch in flight looks like.
 */
export function heldTransport(): { transport: Transport; onWire: Promise<void>; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const onWire = new Promise<void>((resolve) => (entered = resolve));
  const transport: Transport = {
    async ingest(events) {
      entered();
      await gate;
      return { inserted: events.length, duplicates: 0 };
    },
  };
  return { transport, onWire, release };
}
