// A React hook over the merged history of a mirror (polar-event-buffer/mirror): what the server
// confirmed plus what this device tracked and the server has not confirmed yet, each with its
// delivery state.
//
//   const mirror = createMirror(buffer); // once, next to the buffer
//   const { events, loading, error } = useUsageEvents(mirror, { externalCustomerId: user.id });
//
// The list refreshes on the mirror's "change" event, which fires for this tab's track/flush/
// reconcile AND for other tabs and the service worker on the same database.
import { useMemo, useSyncExternalStore } from 'react';
import type { LocalEvent, Mirror, QueryFilter } from 'polar-event-buffer/mirror';

export interface UsageState {
  /** Oldest first, as `mirror.query()` returns them. */
  events: LocalEvent[];
  /** True until the first query answered. */
  loading: boolean;
  /** The last query's failure, if it failed. */
  error: Error | null;
}

/** How a LocalEvent's status reads in a UI. */
export type DeliveryState = 'pending' | 'sent' | 'confirmed' | 'failed';

/**
 * pending: on this device, waiting to be sent (or being sent); sent: Polar accepted it, not yet
 * seen in a reconcile; confirmed: Polar's stored copy is in the mirror; failed: a dead letter.
 */
export function deliveryState(event: LocalEvent): DeliveryState {
  switch (event.status) {
    case 'pending':
    case 'sending':
      return 'pending';
    case 'sent':
      return 'sent';
    case 'confirmed':
      return 'confirmed';
    case 'dead':
      return 'failed';
  }
}

/** A framework-free store (subscribe/getSnapshot) for useSyncExternalStore; also usable in tests. */
export interface UsageStore {
  subscribe(onChange: () => void): () => void;
  getSnapshot(): UsageState;
  /** Queries again now; resolves when the snapshot is updated. */
  refresh(): Promise<void>;
}

const INITIAL: UsageState = { events: [], loading: true, error: null };

export function createUsageStore(mirror: Mirror, filter: QueryFilter = {}): UsageStore {
  let snapshot = INITIAL;
  const listeners = new Set<() => void>();
  let generation = 0;
  const set = (next: UsageState) => {
    snapshot = next;
    for (const listener of listeners) listener();
  };
  const refresh = async () => {
    const mine = ++generation; // a slower older query must not overwrite a newer answer
    try {
      const events = await mirror.query(filter);
      if (mine === generation) set({ events, loading: false, error: null });
    } catch (error) {
      if (mine === generation) set({ ...snapshot, loading: false, error: error as Error });
    }
  };
  return {
    subscribe(onChange) {
      listeners.add(onChange);
      const unsubscribe = mirror.on('change', () => void refresh());
      if (listeners.size === 1) void refresh();
      return () => {
        listeners.delete(onChange);
        unsubscribe();
      };
    },
    getSnapshot: () => snapshot,
    refresh,
  };
}

/**
 * The merged usage history of one customer (or everything), kept up to date.
 * @param mirror made once for the app (module scope or a context), not per render
 * @param filter `mirror.query()` filter; compared by value, so an inline object is fine
 */
export function useUsageEvents(mirror: Mirror, filter: QueryFilter = {}): UsageState {
  const key = JSON.stringify(filter);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for `filter`, compared by value
  const store = useMemo(() => createUsageStore(mirror, filter), [mirror, key]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
