// The page side: track as usual, then ask for a `sync` so the service worker delivers the usage
// even if the user closes the tab while offline.
import { createEventBuffer, httpTransport } from 'polar-event-buffer';

const SYNC_TAG = 'polar-usage'; // the tag sw.ts listens for

export const buffer = createEventBuffer({
  transport: httpTransport({ baseUrl: '/usage' }),
  // The page still flushes on its own timer, when it is hidden and when it comes back online;
  // the service worker is the safety net for a page that is gone.
});

const registration = navigator.serviceWorker.register(new URL('./sw.js', import.meta.url), { type: 'module' });

interface SyncManager {
  register(tag: string): Promise<void>;
}

/** Tracks an event and asks the service worker to deliver it when the network allows. */
export async function trackUsage(name: string, metadata: Record<string, string | number | boolean>): Promise<void> {
  await buffer.track({ name, metadata }); // stored before this resolves
  const worker = await registration;
  const sync = (worker as ServiceWorkerRegistration & { sync?: SyncManager }).sync;
  if (sync) await sync.register(SYNC_TAG);
  else if (navigator.onLine) worker.active?.postMessage('flush');
}

// Without Background Sync, the page tells the worker when the network is back.
window.addEventListener('online', () => {
  void registration.then((worker) => worker.active?.postMessage('flush'));
});
