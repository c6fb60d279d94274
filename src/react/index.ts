// polar-event-buffer/react: hooks over the buffer's stats and a meter's usage and balance.
// React is an optional peer dependency; nothing here runs at import time.
import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
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

const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));

/** Values of one shape compared field by field (stats, usage, balance: flat objects of numbers). */
function sameData(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.is((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * A useSyncExternalStore store over a watch: the snapshot changes only when a different value or
 * an error arrives. Each store has its own loading state (the server's snapshot too), and may
 * start from another store's state (`carried`), so a hook whose time window moved keeps its data.
 */
function liveStore<T>(watch: Watch<T> | undefined, carried?: LiveState<T>) {
  const loading: LiveState<T> = { data: undefined, error: undefined, loading: true };
  let state = carried ?? loading;
  return {
    subscribe(onChange: () => void): () => void {
      if (!watch) return () => {};
      const set = (next: LiveState<T>) => {
        state = next;
        onChange();
      };
      const fail = (error: unknown) => set({ data: state.data, error: asError(error), loading: false });
      const next = (data: T) => {
        // A new watch's first value equal to the one shown is no news: a render would start yet another watch.
        if (!state.loading && state.error === undefined && sameData(data, state.data)) return;
        set({ data, error: undefined, loading: false });
      };
      try {
        return watch(next, fail);
      } catch (error) {
        // A watch that refuses its arguments (a malformed meter) becomes the hook's error, not a crash.
        fail(error);
        return () => {};
      }
    },
    get: () => state,
    // The server (and hydration) renders the loading state: no IndexedDB is opened outside a browser.
    server: () => loading,
  };
}

/**
 * One store per value of `identity` and `window` (compared by value by the callers: JSON keys),
 * never per render. A store made because only `window` moved (a `since` computed at each render)
 * starts from the last store's state, so the hook neither goes back to loading nor, as the new
 * watch reads the same value, renders again: it settles.
 */
function useLive<T>(watch: Watch<T> | undefined, identity: unknown[], window = ''): LiveState<T> {
  const last = useRef<{ identity: unknown[]; store: ReturnType<typeof liveStore<T>> } | undefined>(undefined);
  // biome-ignore lint/correctness/useExhaustiveDependencies: identity and window stand for what `watch` closes over
  const store = useMemo(() => {
    const previous = last.current;
    const same = previous !== undefined && previous.identity.length === identity.length && previous.identity.every((v, i) => Object.is(v, identity[i]));
    return liveStore(watch, same ? previous.store.get() : undefined);
  }, [...identity, window]);
  useEffect(() => {
    last.current = { identity, store };
  });
  return useSyncExternalStore(store.subscribe, store.get, store.server);
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
 * compared by value, so inline objects are fine, and a `since` computed at each render (the last
 * hour) keeps the last value while the moved window is read. `mirror` may be null or undefined (on
 * the server): the state stays loading. A meter Polar would refuse becomes `error`.
 * @example
 * const { data } = useMeterUsage(mirror, meter, { externalCustomerId: user.id, since: startOfMonth });
 * return <span>{data?.value ?? '…'} tokens this month</span>;
 */
export function useMeterUsage(mirror: Mirror | null | undefined, meter: unknown, options: UsageOptions = {}): LiveState<MeterUsage> {
  const { since, until, ...customer } = options;
  return useLive<MeterUsage>(
    mirror ? (next, fail) => watchMeterUsage(mirror, meter, { ...options, onError: fail }, next) : undefined,
    [mirror, JSON.stringify([meter, customer])],
    JSON.stringify([since, until]),
  );
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
