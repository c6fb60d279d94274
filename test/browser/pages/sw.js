// A module service worker that runs the buffer. The page tracks through messages; a Background
// Sync `sync` event (tag "polar-event-buffer") flushes through the library's flushOnSync().
import { createDriver } from '/pages/t-core.js';

const api = new URL(self.location.href).searchParams.get('api');
const T = createDriver(api);
const syncs = [];

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('sync', (event) => {
  syncs.push(event.tag);
  if (T.buffer) T.lib.flushOnSync(event, T.buffer);
});
self.addEventListener('message', (event) => {
  const { id, cmd, args = [] } = event.data;
  const reply = (message) => event.source.postMessage({ id, ...message });
  const run = cmd === 'syncs' ? Promise.resolve(syncs) : Promise.resolve().then(() => T[cmd](...args));
  event.waitUntil(
    run.then(
      (value) => reply({ ok: true, value }),
      (error) => reply({ ok: false, error: String(error?.message) }),
    ),
  );
});
