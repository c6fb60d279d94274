import type { FlushReport } from '../types.js';

/**
 * The parts of a service worker's `SyncEvent` that {@link flushOnSync} uses.
 * @example
 * self.addEventListener('sync', (event) => flushOnSync(event as unknown as SyncEventLike, buffer));
 */
export interface SyncEventLike {
  tag: string;
  lastChance?: boolean;
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * For a service worker: answers a Background Sync `sync` event with `tag` by flushing the buffer.
 * When events are still waiting afterwards (and it is not the browser's last try) the returned
 * promise rejects, so the browser schedules the sync again. Returns whether the event was handled.
 *
 * @example
 * // sw.js
 * const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: '/api/usage' }) });
 * self.addEventListener('sync', (event) => flushOnSync(event, buffer));
 * // page: (await navigator.serviceWorker.ready).sync.register('polar-event-buffer');
 */
export function flushOnSync(event: SyncEventLike, buffer: { flush(): Promise<FlushReport> }, options: { tag?: string } = {}): boolean {
  const tag = options.tag ?? 'polar-event-buffer';
  if (!event || event.tag !== tag) return false;
  event.waitUntil(
    buffer.flush().then((report) => {
      if (report.remaining > 0 && !event.lastChance) {
        throw new Error(`${report.remaining} events are still waiting; the browser will run the sync "${tag}" again.`);
      }
      return report;
    }),
  );
  return true;
}
