// The demo of `npm start`: a Node app buffers usage events while Polar is unreachable, then
// delivers them through a flaky network, and reconciles with what the server stored.
// Everything runs here: the embedded mock Polar on 127.0.0.1 and IndexedDB from fake-indexeddb.
import 'fake-indexeddb/auto';
import { createServer } from 'node:http';
import { createEventBuffer, httpTransport, EventValidationError } from '../dist/index.js';
import { createMirror } from '../dist/mirror.js';
import { startMockPolar } from '../dist/mock-server.js';
import { createRelay, nodeListener } from '../dist/relay.js';

const TOKEN = 'polar_oat_demo_token';
const customers = ['user_ada', 'user_grace', 'user_linus'];
// On a terminal the queue line updates in place; in a log (CI) only the step summaries print.
const tty = process.stdout.isTTY === true;
let progressShown = false;
const line = (text = '') => {
  if (progressShown) process.stdout.write('\r\x1b[2K');
  progressShown = false;
  process.stdout.write(`${text}\n`);
};
const progress = (text) => {
  if (!tty) return;
  process.stdout.write(`\r\x1b[2K${text}`);
  progressShown = true;
};

const server = await startMockPolar({ token: TOKEN });
const buffer = createEventBuffer({
  // On a server the token goes straight to Polar; in a browser, point baseUrl at your backend instead.
  transport: httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer ${TOKEN}` }), timeout: 2000 }),
  dbName: 'polar-event-buffer-demo',
  autoFlush: false,
  batchSize: 40,
  retry: { retries: 4, minTimeout: 100, maxTimeout: 2000 },
});

let lastStats = '';
buffer.on('change', async () => {
  const s = await buffer.stats().catch(() => null);
  if (!s) return;
  const text = `  queue: ${s.pending} pending · ${s.sending} sending · ${s.sent} sent · ${s.confirmed} confirmed · ${s.dead} dead`;
  if (text !== lastStats) progress((lastStats = text));
});
const errors = [];
buffer.on('error', (error) => errors.push(error));

line(`polar-event-buffer demo — mock Polar at ${server.url}\n`);

// 1. Offline: the server is unreachable, tracking goes on and nothing is lost.
server.setOnline(false);
line('1. The network is down. Tracking 150 usage events for 3 customers...');
const tracked = [];
const started = Date.now();
await Promise.all(
  Array.from({ length: 150 }, (_, i) =>
    buffer
      .track({
        name: i % 5 === 0 ? 'llm_call' : 'api_call',
        externalCustomerId: customers[i % 3],
        metadata:
          i % 5 === 0 ? { model: 'gpt-demo', tokens: 100 + i, _cost: { amount: 3 + i, currency: 'usd' } } : { endpoint: `/v1/items/${i}`, ms: 20 + (i % 17) },
      })
      .then((event) => tracked.push(event)),
  ),
);
// A child event whose parent the server has never seen: Polar refuses it (422), so it ends in the
// dead letters with the server's reason instead of blocking the queue.
tracked.push(await buffer.track({ name: 'api_call', externalCustomerId: 'user_ada', parentId: 'no-such-parent-event', metadata: { ms: 5 } }));
line(`   ${tracked.length} events committed to IndexedDB in ${Date.now() - started} ms (each track() resolved after its transaction committed).`);
try {
  await buffer.track({ name: '', externalCustomerId: 'user_ada', metadata: { tokens: Number.NaN } });
} catch (error) {
  if (!(error instanceof EventValidationError)) throw error;
  line(`   A bad input is refused up front and nothing is stored:\n     ${error.message}`);
}

line('\n2. Flushing while offline: the batch is retried with backoff, then stays queued.');
const offline = await buffer.flush();
line(
  `   flush → sent ${offline.sent}, remaining ${offline.remaining} (stopped by: ${offline.stoppedBy}); ${errors.length} transport errors reported on "error".`,
);

// 2. Back online, through a flaky network: a 503 with Retry-After, a 429, a dropped connection,
// and one answer lost after the server stored the batch (the resend is counted as duplicates).
line('\n3. The network is back, but flaky: 503 + Retry-After, 429, a dropped connection, a lost answer.');
server.setOnline(true);
server.addFaults({ status: 503, retryAfter: 1 }, { status: 429, retryAfter: 1 }, { drop: true }, { drop: true, afterProcessing: true });
const flushes = [];
for (let i = 0; i < 10; i++) {
  // The backoff kept with the events (nextAttemptAt) decides when they are due again.
  const report = await buffer.flush();
  flushes.push(report);
  if (report.remaining === 0) break;
  await new Promise((r) => setTimeout(r, 500));
}
const total = flushes.reduce(
  (sum, r) => ({ sent: sum.sent + r.sent, duplicates: sum.duplicates + r.duplicates, dead: sum.dead + r.deadLettered, requests: sum.requests + r.requests }),
  { sent: 0, duplicates: 0, dead: 0, requests: 0 },
);
line(
  `   ${flushes.length} flushes: sent ${total.sent} in ${total.requests} requests (retries included), ${total.duplicates} counted as duplicates, ${total.dead} dead-lettered.`,
);

const stats = await buffer.stats();
const dead = await buffer.deadLetters();
const perId = server.countByExternalId();
const onServerOnce = tracked.filter((e) => perId.get(e.externalId) === 1).length;
const onServerTwice = [...perId.values()].filter((n) => n > 1).length;

line('\n4. Reconciling with what the server stored...');
// The read path (reconcile, query) is its own entry: an app that only tracks never loads it.
const mirror = createMirror(buffer);
let reconcile;
try {
  for (const customer of customers) {
    const r = await mirror.reconcile({ externalCustomerId: customer });
    reconcile = reconcile ? { fetched: reconcile.fetched + r.fetched, matched: reconcile.matched + r.matched, added: reconcile.added + r.added } : r;
  }
} catch (error) {
  line(`   reconcile failed: ${error.message}`);
}

// 5. Browsers never hold the organization token: they send to the app's relay, which forces each
// event's customer to the signed-in user and merges all devices' flushes of each window into one
// Polar request (Polar allows a token 500 requests a minute, shared with the app's own calls).
const DEVICES = 20;
const ROUNDS = 3;
line(`\n5. ${DEVICES} browsers, each a signed-in user, report usage through the relay (${ROUNDS} rounds of flushes)...`);
const relay = createRelay({
  accessToken: TOKEN,
  baseUrl: server.url,
  // Your login: here the bearer token is the user's id.
  authenticate: (request) => {
    const user = /^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
    return user ? { externalCustomerId: user } : null;
  },
  window: 500,
});
const relayServer = createServer(nodeListener(relay));
await new Promise((resolve) => relayServer.listen(0, '127.0.0.1', resolve));
const relayUrl = `http://127.0.0.1:${relayServer.address().port}`;
const polarBefore = server.ingestRequests().length;
const devices = Array.from({ length: DEVICES }, (_, i) =>
  createEventBuffer({
    transport: httpTransport({ baseUrl: relayUrl, headers: () => ({ Authorization: `Bearer device_user_${i}` }) }),
    indexedDB: new IDBFactory(),
    dbName: `demo-device-${i}`,
    autoFlush: false,
  }),
);
let deviceRequests = 0;
let deviceSent = 0;
for (let round = 0; round < ROUNDS; round++) {
  await Promise.all(devices.map((d, i) => d.track({ name: 'page_action', externalCustomerId: `device_user_${i}`, metadata: { round } })));
  // Every device flushes at about the same moment, as they would on their own timers.
  const reports = await Promise.all(devices.map((d) => d.flush()));
  deviceRequests += reports.reduce((n, r) => n + r.requests, 0);
  deviceSent += reports.reduce((n, r) => n + r.sent, 0);
}
const polarForDevices = server.ingestRequests().length - polarBefore;
const deviceEvents = server.events.filter((e) => e.name === 'page_action');
await Promise.all(devices.map((d) => d.close()));
await relay.close();
await new Promise((resolve) => relayServer.close(resolve));
line(`   ${deviceSent} events in ${deviceRequests} device flushes reached Polar in ${polarForDevices} requests.`);

line('\n──────────────────────────── report ────────────────────────────');
line(`  queued (accepted by track)      ${tracked.length}`);
line(`  sent (acknowledged by server)   ${total.sent}   in ${total.requests} requests over ${flushes.length} flushes`);
line(`  duplicates (server deduped)     ${total.duplicates}`);
line(`  dead-lettered                   ${dead.length}${dead.length ? `  ← ${dead[0].error}` : ''}`);
line(`  still waiting                   ${stats.pending + stats.sending}`);
line(`  on the server exactly once      ${onServerOnce} of ${tracked.length - dead.length} deliverable; stored twice: ${onServerTwice}`);
if (reconcile) {
  const after = await buffer.stats();
  line(`  reconciled                      fetched ${reconcile.fetched}, matched ${reconcile.matched}; confirmed now ${after.confirmed}`);
  const history = await mirror.query({ externalCustomerId: 'user_ada', limit: 6 });
  line(`\n  user_ada's merged history (first ${history.length}):`);
  for (const e of history) {
    line(`    ${e.timestamp.toISOString()}  ${e.name.padEnd(9)} ${e.status.padEnd(9)} ${JSON.stringify(e.metadata)}`);
  }
}
line(
  `  devices through the relay       ${DEVICES} devices, ${deviceRequests} flushes → ${polarForDevices} Polar requests (one per device flush: ${deviceRequests}); ${deviceEvents.length} events stored`,
);
line('────────────────────────────────────────────────────────────────');

await buffer.close();
await server.close();
const lost = tracked.length - dead.length - onServerOnce;
const deviceLost = DEVICES * ROUNDS - deviceEvents.length;
if (lost !== 0 || onServerTwice !== 0 || deviceLost !== 0) {
  line(`\nFAILED: ${lost + deviceLost} lost, ${onServerTwice} duplicated.`);
  process.exit(1);
}
line('\nNothing lost, nothing counted twice.');
