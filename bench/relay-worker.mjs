// One worker thread of bench/relay.mjs: a slice of the simulated devices, each a real buffer
// (fake-indexeddb, default options) whose httpTransport points at the relay or the forwarder.
import 'fake-indexeddb/auto';
import { parentPort, workerData } from 'node:worker_threads';
import { IDBFactory } from 'fake-indexeddb';
import { createEventBuffer, httpTransport } from '../dist/index.js';
import { createMirror } from '../dist/mirror.js';

const { devices, url, trackMs, everyMs, reconcileEveryMs, drainMs } = workerData;

// Each device stands for a browser, which has Web Locks: without them (Node 20) every flush takes
// and releases a lease in IndexedDB, which costs the simulator, not the relay. Each device has its
// own database, so an in-memory exclusive lock per name is what its browser would give it.
if (!globalThis.navigator?.locks) {
  const held = new Set();
  const locks = {
    async request(name, _options, callback) {
      if (held.has(name)) return callback(null);
      held.add(name);
      try {
        return await callback({ name, mode: 'exclusive' });
      } finally {
        held.delete(name);
      }
    },
  };
  globalThis.navigator = { ...globalThis.navigator, locks };
}

// How late this thread's timers fire: a saturated simulator delays every device's flush.
const lags = [];
let expected = Date.now() + 100;
const lagTimer = setInterval(() => {
  lags.push(Math.max(0, Date.now() - expected));
  expected = Date.now() + 100;
}, 100);
const factory = new IDBFactory();
const tracked = [];
const commitMs = [];
let trackErrors = 0;
let reconciles = 0;
let reconcileErrors = 0;
const timers = new Set();
const later = (at, fn) => {
  const t = setTimeout(
    () => {
      timers.delete(t);
      fn();
    },
    Math.max(0, at - Date.now()),
  );
  timers.add(t);
};

const buffers = devices.map((d) =>
  createEventBuffer({
    transport: httpTransport({ baseUrl: url, headers: () => ({ Authorization: `Bearer ${d.token}` }) }),
    indexedDB: factory,
    dbName: `device-${d.id}`,
  }),
);
// Every database is open before the clock starts: a page has its buffer long before it tracks.
for (const b of buffers) await b.stats();
parentPort.postMessage({ ready: true });
const start = await new Promise((resolve) => parentPort.once('message', (m) => resolve(m.start)));

devices.forEach((d, i) => {
  const buffer = buffers[i];
  buffer.on('error', () => undefined);
  let seq = 0;
  const track = (at) => {
    if (at >= start + trackMs) return;
    later(at, () => {
      const k = `${d.id}-${seq++}`;
      const t = Date.now();
      buffer.track({ name: 'bench_event', externalCustomerId: d.customer, metadata: { k, t } }).then(
        () => {
          tracked.push([k, t]);
          commitMs.push(Date.now() - t);
        },
        () => trackErrors++,
      );
      track(at + everyMs);
    });
  };
  track(start + d.trackOffset);
  let mirror;
  const reconcile = (at) => {
    if (at >= start + trackMs) return;
    later(at, () => {
      mirror ??= createMirror(buffer);
      reconciles++;
      mirror.reconcile({ externalCustomerId: d.customer }).catch(() => reconcileErrors++);
      reconcile(at + reconcileEveryMs);
    });
  };
  reconcile(start + d.reconcileOffset);
});

// After the tracking period: wait until every device has delivered everything, or the drain cap.
await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + trackMs - Date.now()) + 200));
const deadline = start + trackMs + drainMs;
let waiting = 0;
for (;;) {
  waiting = 0;
  for (const b of buffers) {
    const s = await b.stats();
    waiting += s.pending + s.sending;
  }
  if (waiting === 0 || Date.now() >= deadline) break;
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
for (const t of timers) clearTimeout(t);
clearInterval(lagTimer);
await Promise.all(buffers.map((b) => b.close().catch(() => undefined)));
parentPort.postMessage({ tracked, trackErrors, reconciles, reconcileErrors, waiting, lags, commitMs });
