import type { ResolvedOptions } from '../options.js';

export type FlushReason = 'timer' | 'batch-full' | 'online' | 'hidden' | 'retry';

interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/**
 * When to flush (with `autoFlush`): every `flushInterval` ms, when `batchSize` events are waiting,
 * when the page comes back online, and when it is hidden or goes away (then with keepalive).
 * Globals are looked up when the buffer starts, never at import time; absent ones are skipped.
 */
export class Scheduler {
  readonly #options: ResolvedOptions;
  readonly #flush: (reason: FlushReason) => void;
  #timer: unknown;
  #running = false;
  #cleanups: (() => void)[] = [];

  constructor(options: ResolvedOptions, hooks: { flush: (reason: FlushReason) => void }) {
    this.#options = options;
    this.#flush = hooks.flush;
  }

  start(): void {
    if (!this.#options.autoFlush || this.#running) return;
    this.#running = true;
    this.#arm();
    const g = globalThis as unknown as Partial<EventTargetLike> & { document?: EventTargetLike & { visibilityState?: string } };
    if (typeof g.addEventListener === 'function' && typeof g.removeEventListener === 'function') {
      this.#listen(g as EventTargetLike, 'online', () => this.#flush('online'));
      this.#listen(g as EventTargetLike, 'pagehide', () => this.#flush('hidden'));
    }
    const doc = g.document;
    if (doc && typeof doc.addEventListener === 'function') {
      this.#listen(doc, 'visibilitychange', () => {
        if (doc.visibilityState === 'hidden') this.#flush('hidden');
      });
    }
  }

  #listen(target: EventTargetLike, type: string, listener: () => void): void {
    target.addEventListener(type, listener);
    this.#cleanups.push(() => target.removeEventListener(type, listener));
  }

  #arm(): void {
    const { flushInterval, clock } = this.#options;
    if (!this.#running || flushInterval <= 0) return;
    this.#timer = clock.setTimeout(() => {
      this.#flush('timer');
      this.#arm();
    }, flushInterval);
  }

  /** A flush for a reason other than the timer (ignored without autoFlush). */
  trigger(reason: FlushReason): void {
    if (this.#running) this.#flush(reason);
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const cleanup of this.#cleanups) cleanup();
    this.#cleanups = [];
  }
}
