/**
 * Tells the other tabs and workers on the same database that the queue or the mirror changed, so
 * `"change"` fires everywhere. A no-op where BroadcastChannel is missing.
 *
 * Posts are throttled (issue 6): a `postMessage` costs about as much renderer time as an
 * IndexedDB put, so a burst of awaited `track()` calls would pay it once per call. The first
 * change of a quiet period is posted at once; the changes that follow within CHANGE_WINDOW_MS are posted
 * together when the window ends (each distinct reason once), and close() posts what is left.
 */
import type { ChangeEvent } from '../types.js';
import { env } from '../env.js';

interface ChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
}

export type ChangeReason = ChangeEvent['reason'];

export interface ChannelTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** How long a burst of changes is gathered into one post per reason. */
export const CHANGE_WINDOW_MS = 50;

/**
 * The window runs on the wall clock, not on the buffer's injected `clock`: it only paces messages
 * between tabs, and must not move the domain time (backoff, leases) of a test clock.
 */
const wallClockTimers: ChannelTimers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class ChangeChannel {
  #channel: ChannelLike | undefined;
  readonly #timers: ChannelTimers;
  /** Reasons waiting for the end of the current window. */
  readonly #held = new Set<ChangeReason>();
  /** The window's timer while one is open. */
  #window: unknown;

  constructor(dbName: string, onMessage: (event: { reason: ChangeReason }) => void, timers: ChannelTimers = wallClockTimers) {
    this.#timers = timers;
    const BC = env().BroadcastChannel as (new (name: string) => ChannelLike) | undefined;
    if (typeof BC !== 'function') return;
    try {
      this.#channel = new BC(`polar-event-buffer:${dbName}`);
      // Node's BroadcastChannel would keep the process alive.
      (this.#channel as { unref?: () => void }).unref?.();
      this.#channel.onmessage = (event) => {
        const data = event.data as { reason?: unknown } | null;
        if (data && typeof data.reason === 'string') onMessage({ reason: data.reason as ChangeReason });
      };
    } catch {
      this.#channel = undefined;
    }
  }

  post(message: { reason: ChangeReason }): void {
    if (!this.#channel) return;
    if (this.#window !== undefined) {
      this.#held.add(message.reason);
      return;
    }
    this.#send(message.reason);
    this.#openWindow();
  }

  close(): void {
    if (this.#window !== undefined) this.#timers.clearTimeout(this.#window);
    this.#window = undefined;
    this.#release();
    this.#channel?.close();
    this.#channel = undefined;
  }

  #openWindow(): void {
    this.#window = this.#timers.setTimeout(() => {
      this.#window = undefined;
      if (this.#held.size === 0) return;
      this.#release();
      this.#openWindow();
    }, CHANGE_WINDOW_MS);
    (this.#window as { unref?: () => void } | null)?.unref?.();
  }

  #release(): void {
    for (const reason of this.#held) this.#send(reason);
    this.#held.clear();
  }

  #send(reason: ChangeReason): void {
    try {
      this.#channel?.postMessage({ reason });
    } catch {
      // A closed channel: nobody to tell.
    }
  }
}
