// polar-event-buffer/react: hooks over the buffer's stats and a meter's usage and balance.
// React is an optional peer dependency; nothing here runs at import time.
import { useMemo, useSyncExternalStore } from 'react';
import type { BalanceCustomer, MeterBalance } from '../meters/balance.js';
import { watchMeterBalance, watchMeterUsage } from '../meters/live.js';
import type { CustomerPortal } from '../meters/portal.js';
import type { MeterUsage, UsageOptions } from '../meters/usage.js';
import type { Mirror } from '../mirror/types.js';
import type { BufferStats, EventBuffer } from '../types.js';

/**
 * What a hook returns: the last value, the last failure since it, and whether a first value is
 * still awaited.
 * @example
 * const { data, error, loading }: LiveState<BufferStats> = useBufferStats(buffer);
 */
export interface LiveState<T> {
  /** The last value; undefined until the first. */
  data: T | undefined;
  /** The last failure since the last new value (a failed read, an unreachable portal, a refused meter). */
  error: Error | undefined;
  /** True until the first value or failure (always on the server). */
  loading: boolean;
}

/** Starts watching; calls `next` with each value and `fail` with each failure; returns a stop function. */
type Watch<T> = (next: (value: T) => void, fail: (error: unknown) => void) => () => void;

const LOADING: LiveState<never> = Object.freeze({ data: undefined, error: undefined, loading: true });
// The server (and hydration) renders the loading state: no IndexedDB is opened outside a browser.
const loadingState = () => LOADING;
const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));

/** A useSyncExternalStore store over a watch: the snapshot changes only when a value or error arrives. */
function liveStore<T>(watch: Watch<T> | undefined) {
  let state: LiveState<T> = LOADING;
  return {
    subscribe(onChange: () => void): () => void {
      if (!watch) return () => {};
      const set = (next: LiveState<T>) => {
        state = next;
        onChange();
      };
      const fail = (error: unknown) => set({ data: state.data, error: asError(error), loading: false });
      try {
        return watch((data) => set({ data, error: undefined, loading: false }), fail);
      } catch (error) {
        // A watch that refuses its arguments (a malformed meter) becomes the hook's error, not a crash.
        fail(error);
        return () => {};
      }
    },
    get: () => state,
  };
}

function useLive<T>(watch: Watch<T> | undefined, deps: unknown[]): LiveState<T> {
  // biome-ignore lint/correctness/useExhaustiveDependencies: the callers' deps stand for what `watch` closes over
  const store = useMemo(() => liveStore(watch), deps);
  return useSyncExternalStore(store.subscribe, store.get, loadingState);
}

/**
 * The buffer's stats, read again on each of its "change" events (this tab, other tabs, workers).
 * `buffer` may be null or undefined (on the server, where there is no IndexedDB): the state stays loading.
 * @example
 * const { data } = useBufferStats(buffer);
 * return <span>{data ? `${data.pending} waiting` : '…'}</span>;
 */
export function useBufferStats(buffer: Pick<EventBuffer<any>, 'stats' | 'on'> | null | undefined): LiveState<BufferStats> {
  return useLive<BufferStats>(buffer ? (next, fail) => watchStats(buffer, next, fail) : undefined, [buffer]);
}

function watchStats(buffer: Pick<EventBuffer<any>, 'stats' | 'on'>, next: (stats: BufferStats) => void, fail: (error: unknown) => void) {
  let stopped = false;
  let reading = false;
  let again = false;
  // One read at a time; changes during a read cause one more read, not one per change.
  const read = async () => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    do {
      again = false;
      try {
        const stats = await buffer.stats();
        if (!stopped) next(stats);
      } catch (error) {
        if (!stopped) fail(error);
      }
    } while (again && !stopped);
    reading = false;
  };
  const off = buffer.on('change', () => void read());
  void read();
  return () => {
    stopped = true;
    off();
  };
}

/**
 * A meter's usage (see `watchMeterUsage`), kept up to date across tabs. `meter` and `options` are
 * compared by value, so inline objects are fine. `mirror` may be null or undefined (on the server):
 * the state stays loading. A meter Polar would refuse becomes `error`.
 * @example
 * const { data } = useMeterUsage(mirror, meter, { externalCustomerId: user.id, since: startOfMonth });
 * return <span>{data?.value ?? '…'} tokens this month</span>;
 */
export function useMeterUsage(mirror: Mirror | null | undefined, meter: unknown, options: UsageOptions = {}): LiveState<MeterUsage> {
  return useLive<MeterUsage>(mirror ? (next, fail) => watchMeterUsage(mirror, meter, { ...options, onError: fail }, next) : undefined, [
    mirror,
    JSON.stringify([meter, options]),
  ]);
}

/**
 * A customer's balance on a meter (see `watchMeterBalance`): the portal's last answer lowered by
 * the events Polar's meter may not count yet, so it keeps dropping offline; a portal failure sets `error` and keeps
 * `data`. `meter` (an id or a definition) and `customer` are compared by value.
 * @example
 * const { data } = useMeterBalance(mirror, portal, meterId, { externalCustomerId: user.id });
 * if (data && data.balance <= 0) return <OutOfCredits />;
 */
export function useMeterBalance(
  mirror: Mirror | null | undefined,
  portal: CustomerPortal | null | undefined,
  meter: string | object,
  customer: BalanceCustomer,
): LiveState<MeterBalance> {
  return useLive<MeterBalance>(mirror && portal ? (next, fail) => watchMeterBalance(mirror, portal, meter, { ...customer, onError: fail }, next) : undefined, [
    mirror,
    portal,
    JSON.stringify([meter, customer]),
  ]);
}
