// A CLI tool / worker that records usage while the network is away and delivers it later.
//
//   node examples/node-cli.mjs            # runs the whole scenario against a local mock Polar
//
// In Node there is no IndexedDB, so fake-indexeddb provides it. fake-indexeddb keeps data in
// memory: good for a long-running worker that must ride out network outages, not for surviving a
// process restart. (For that, give the worker a persistent IDBFactory, or flush before exit as
// below.) In your own tool, point httpTransport at https://api.polar.sh with an organization token.
import 'fake-indexeddb/auto'; // IndexedDB globals (idb checks `instanceof IDBRequest`)
import { createEventBuffer, httpTransport } from 'polar-event-buffer';
import { startMockPolar } from 'polar-event-buffer/mock-server';

const polar = await startMockPolar({ token: 'polar_oat_cli' }); // your tool: skip this
const baseUrl = process.env.POLAR_API_URL ?? polar.url; // e.g. https://api.polar.sh
const token = process.env.POLAR_ACCESS_TOKEN ?? 'polar_oat_cli';

const buffer = createEventBuffer({
  transport: httpTransport({ baseUrl, headers: () => ({ Authorization: `Bearer ${token}` }), timeout: 2000 }),
  defaults: { externalCustomerId: process.env.USER_ID ?? 'user_cli' },
  flushInterval: 1000, // try every second in the background
  retry: { retries: 1, minTimeout: 100, maxTimeout: 500 },
});
buffer.on('flush', (report) => {
  if (report.sent > 0) console.log(`  delivered ${report.sent} (${report.remaining} still waiting)`);
});
buffer.on('error', () => {}); // a failed background flush keeps the events; nothing to do here

// 1. The network goes away: the mock drops every connection.
polar.setOnline(false);
console.log('offline: processing 5 jobs');
for (let job = 1; job <= 5; job++) {
  // track() resolves once the event is stored, whether or not Polar can be reached.
  await buffer.track({ name: 'job.completed', metadata: { job, duration_ms: 120 * job } });
}
await buffer.flush().catch(() => {}); // fails quietly: the events stay waiting
console.log('waiting while offline:', (await buffer.stats()).pending);

// 2. The network comes back: the next background flush delivers everything, oldest first.
polar.setOnline(true);
console.log('online again');
for (let s = await buffer.stats(); s.pending + s.sending > 0; s = await buffer.stats()) {
  // The background timer does this on its own; a CLI in a hurry can also call flush() itself.
  // (A failed flush left its events a backoff delay, so the loop waits until they are due.)
  await new Promise((resolve) => setTimeout(resolve, 200));
}

// 3. Before the process exits, deliver what is left. A long-running worker would do it on SIGTERM:
//    process.once('SIGTERM', async () => { await buffer.flush().catch(() => {}); await buffer.close(); process.exit(0); });
const last = await buffer.flush();
console.log('final flush:', last);
console.log('Polar stored:', polar.events.map((e) => `${e.name}#${e.metadata.job}`).join(', '));
await buffer.close();
await polar.close();
