/// <reference lib="webworker" />
// A service worker that delivers buffered usage on Background Sync's `sync` event: the browser
// fires it when the device is back online, even after every tab of the site was closed.
//
// Build it as a module worker with your bundler (it imports 'polar-event-buffer'), then register
// it from the page (see page.ts). The page and the worker open the same database (same dbName), so
// they share one queue; the buffer's flush lock keeps them from sending the same batch twice.
import { createEventBuffer, httpTransport } from 'polar-event-buffer';

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

interface SyncEvent extends ExtendableEvent {
  readonly tag: string;
  readonly lastChance: boolean;
}

self.addEventListener('sync', ((event: SyncEvent) => {
  if (event.tag !== SYNC_TAG) return;
  event.waitUntil(
    (async () => {
      const report = await getBuffer().flush();
      // Events still waiting (server down, backoff not over): failing the sync makes the browser
      // fire it again later, with its own backoff. On the last chance, keep them for the page.
      if (report.remaining > 0 && !event.lastChance) {
        throw new Error(`${report.remaining} usage events still waiting; retrying the sync later.`);
      }
    })(),
  );
}) as EventListener);

// Browsers without Background Sync (Firefox, Safari): the page posts 'flush' when it goes online.
self.addEventListener('message', (event: ExtendableMessageEvent) => {
  if (event.data === 'flush') event.waitUntil(getBuffer().flush());
});
