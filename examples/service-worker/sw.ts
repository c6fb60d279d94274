/// <reference lib="webworker" />
// A service worker that delivers buffered usage on Background Sync's `sync` event: the browser
// fires it when the device is back online, even after every tab of the site was closed.
//
// Build it as a module worker with your bundler (it imports 'polar-event-buffer'), then register
// it from the page (see page.ts). The page and the worker open the same database (same dbName), so
// they share one queue; the buffer's flush lock keeps them from sending the same batch twice.
import { createEventBuffer, flushOnSync, httpTransport, type SyncEventLike } from 'polar-event-buffer';

declare const self: ServiceWorkerGlobalScope;

/** The tag page.ts registers; one name for "there is usage waiting". */
export const SYNC_TAG = 'polar-usage';

// Created lazily: a service worker may be started just for one event and stopped right after.
let buffer: ReturnType<typeof createEventBuffer> | undefined;
function getBuffer() {
  buffer ??= createEventBuffer({
    // Your backend route that checks the session and forwards to Polar (examples/proxy-server);
    // the session cookie goes along because it is the same origin.
    transport: httpTransport({ baseUrl: '/usage' }),
    // The browser decides when the worker runs: no timers of its own.
    autoFlush: false,
  });
  return buffer;
}

// flushOnSync: flushes, and when events are still waiting (server down, backoff not over) fails
// the sync so the browser fires it again later with its own backoff; on the browser's last try it
// keeps them for the page instead.
self.addEventListener('sync', (event) => {
  flushOnSync(event as unknown as SyncEventLike, getBuffer(), { tag: SYNC_TAG });
});

// Browsers without Background Sync (Firefox, Safari): the page posts 'flush' when it goes online.
self.addEventListener('message', (event: ExtendableMessageEvent) => {
  if (event.data === 'flush') event.waitUntil(getBuffer().flush());
});
