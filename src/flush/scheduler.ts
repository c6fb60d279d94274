import { TransportError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { Transport } from '../transport/transport.js';
import { env, listen } from '../env.js';

/**
 * `hidden`: the document became hidden (it may still live): a normal flush with keepalive.
 * `pagehide`: the page is going away now: only what can start synchronously gets out.
 */
export type FlushReason = 'timer' | 'batch-full' | 'online' | 'hidden' | 'pagehide' | 'retry';

export interface SchedulerHooks {
  flush: (reason: FlushReason) => void;
  /** Whether the server answers at all (any HTTP status); asked after an `online` event. */
  probe?: () => Promise<boolean>;
}

const PROBE_FIRST_DELAY_MS = 500;
const PROBE_MAX_DELAY_MS = 30_000;

/**
 * When to flush (with `autoFlush`): every `flushInterval` ms, when `batchSize` events are waiting,
 * when the page is hidden or goes away (then with keepalive), and when the browser comes back
 * online: then only after a cheap reachability probe succeeds (retried with backoff while it
 * fails), since `online` only means a network interface is up. While `navigator.onLine` is false
 * nothing is sent (each failure would only count an attempt and push the events' backoff out).
 * Globals are looked up when the buffer starts, never at import time; absent ones are skipped.
 */
export class Scheduler {
  readonly #options: ResolvedOptions;
  readonly #hooks: SchedulerHooks;
  #timer: unknown;
  #probeTimer: unknown;
  #probeRound = 0;
  #running = false;
  #cleanups: (() => void)[] = [];

  constructor(options: ResolvedOptions, hooks: SchedulerHooks) {
    this.#options = options;
    this.#hooks = hooks;
  }

  start(): void {
    if (!this.#options.autoFlush || this.#running) return;
    this.#running = true;
    this.#arm();
    const { window, document } = env();
    this.#cleanups = [
      listen(window, 'online', () => this.#cameOnline()),
      listen(window, 'offline', () => this.#cancelProbe()),
      listen(window, 'pagehide', () => this.#fire('pagehide')),
      listen(document, 'visibilitychange', () => {
        if (document?.visibilityState === 'hidden') this.#fire('hidden');
      }),
    ];
  }

  #arm(): void {
    const { flushInterval, clock } = this.#options;
    if (!this.#running || flushInterval <= 0) return;
    this.#timer = clock.setTimeout(() => {
      this.#fire('timer');
      this.#arm();
    }, flushInterval);
  }

  #fire(reason: FlushReason): void {
    if (this.#running && !isOffline()) this.#hooks.flush(reason);
  }

  #cameOnline(): void {
    if (!this.#running) return;
    this.#cancelProbe();
    if (!this.#hooks.probe) {
      this.#hooks.flush('online');
      return;
    }
    const round = ++this.#probeRound;
    let delay = PROBE_FIRST_DELAY_MS;
    const attempt = (): void => {
      this.#hooks.probe!()
        .catch(() => false)
        .then((reachable) => {
          if (!this.#running || round !== this.#probeRound || isOffline()) return;
          if (reachable) return this.#hooks.flush('online');
          this.#probeTimer = this.#options.clock.setTimeout(attempt, delay);
          delay = Math.min(delay * 2, PROBE_MAX_DELAY_MS);
        });
    };
    attempt();
  }

  #cancelProbe(): void {
    this.#probeRound++;
    if (this.#probeTimer !== undefined) this.#options.clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  /** A flush for a reason other than the timer (ignored without autoFlush, or while offline). */
  trigger(reason: FlushReason): void {
    this.#fire(reason);
  }

  stop(): void {
    this.#running = false;
    this.#cancelProbe();
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const cleanup of this.#cleanups) cleanup();
    this.#cleanups = [];
  }
}

/** `navigator.onLine === false` is reliable ("certainly offline"); `true` is not, hence the probe. */
const isOffline = (): boolean => env().navigator?.onLine === false;

/**
 * The reachability probe: an empty ingest (`{"events": []}`, nothing stored), bounded to a few
 * seconds. Any HTTP answer, even an error status, proves the server is reachable; only a network
 * failure (status 0) does not. A custom transport that throws something else counts as reachable
 * (the flush will find out).
 */
export async function probeTransport(transport: Transport, timeoutMs = 5000): Promise<boolean> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    await transport.ingest([], { signal: controller.signal });
    return true;
  } catch (error) {
    return !(error instanceof TransportError && error.status === 0);
  } finally {
    clearTimeout(timer);
  }
}
