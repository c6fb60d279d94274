// npm run bench:relay: thousands of devices through the relay, and through a one-to-one forwarder,
// against the mock Polar with Polar's limit (500 requests a minute per token). Never part of npm test.
//
//   node bench/relay.mjs [--devices 1000] [--minutes 2] [--every 10000] [--reconcile 600000]
//                        [--workers 3] [--drain 60000] [--side both|relay|forwarder]
//
// Devices are real buffers (fake-indexeddb, default options) spread over worker threads; each tracks
// one event every `--every` ms (staggered) and reconciles once every `--reconcile` ms (staggered).
// Delivery is from track() to the arrival of the Polar request that stored the event.
import { createServer } from 'node:http';
import { Worker } from 'node:worker_threads';
import { startMockPolar } from '../dist/mock-server.js';
import { createRelay, nodeListener } from '../dist/relay.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const DEVICES = Number(arg('devices', 1000));
const TRACK_MS = Number(arg('minutes', 2)) * 60_000;
const EVERY_MS = Number(arg('every', 10_000));
const RECONCILE_MS = Number(arg('reconcile', 600_000));
const WORKERS = Number(arg('workers', 3));
const DRAIN_MS = Number(arg('drain', 60_000));
const SIDES = arg('side', 'both') === 'both' ? ['relay', 'forwarder'] : [arg('side')];
const TOKEN = 'polar_oat_bench';
const FLUSH_INTERVAL = 5000; // the buffer's default

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));
const customerOf = (request) => /^Bearer dev-(\d+)$/.exec(request.headers.get?.('authorization') ?? request.headers.authorization ?? '')?.[1];

/** The one-to-one forwarder: every device request is one Polar request (what an app writes first). */
function forwarder(polarUrl) {
  return createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    try {
      const upstream = await fetch(`${polarUrl}${req.url}`, {
        method: req.method,
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        ...(req.method === 'POST' ? { body: Buffer.concat(chunks) } : {}),
      });
      const headers = { 'Content-Type': 'application/json' };
      const retryAfter = upstream.headers.get('retry-after');
      if (retryAfter) headers['Retry-After'] = retryAfter;
      res.writeHead(upstream.status, headers).end(await upstream.text());
    } catch {
      res.writeHead(502).end('{"detail":"unreachable"}');
    }
  });
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

async function run(side) {
  const polar = await startMockPolar({ token: TOKEN, rateLimit: { requests: 500, window: 60_000 } });
  let relay;
  let server;
  const polarMs = [];
  const holdMs = [];
  if (side === 'relay') {
    relay = createRelay({
      accessToken: TOKEN,
      baseUrl: polar.url,
      authenticate: (request) => {
        const id = customerOf(request);
        return id === undefined ? null : { externalCustomerId: `customer-${id}` };
      },
      onEvent: (e) => e.type === 'polar' && e.call === 'ingest' && polarMs.push(e.ms),
    });
    const timed = {
      fetch: async (request) => {
        const t = Date.now();
        const response = await relay.fetch(request);
        if (request.method === 'POST') holdMs.push(Date.now() - t);
        return response;
      },
    };
    server = createServer(nodeListener(timed));
  } else server = forwarder(polar.url);
  server.keepAliveTimeout = 30_000;
  const url = await listen(server);

  const devices = Array.from({ length: DEVICES }, (_, id) => ({
    id,
    token: `dev-${id}`,
    customer: `customer-${id}`,
    trackOffset: Math.floor((id / DEVICES) * EVERY_MS),
    reconcileOffset: Math.floor((((id * 7919) % DEVICES) / DEVICES) * RECONCILE_MS),
  }));
  const workers = Array.from({ length: WORKERS }, (_, w) => {
    const slice = devices.filter((d) => d.id % WORKERS === w);
    const worker = new Worker(new URL('./relay-worker.mjs', import.meta.url), {
      workerData: { devices: slice, url, trackMs: TRACK_MS, everyMs: EVERY_MS, reconcileEveryMs: RECONCILE_MS, drainMs: DRAIN_MS },
    });
    const messages = [];
    let wake;
    worker.on('message', (m) => (messages.push(m), wake?.()));
    worker.once('error', (e) => {
      console.error(e);
      process.exit(1);
    });
    const next = async () => {
      while (messages.length === 0) await new Promise((resolve) => (wake = resolve));
      return messages.shift();
    };
    return { worker, next };
  });
  // The clock starts once every device's database is open.
  for (const w of workers) await w.next();
  const start = Date.now() + 1000;
  for (const w of workers) w.worker.postMessage({ start });
  const results = await Promise.all(workers.map((w) => w.next()));
  const ended = Date.now();
  const stats = relay?.stats();
  if (relay) await relay.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));

  // What Polar received: the first 200 ingest that carried an event is when it was stored.
  const trackedAt = new Map(results.flatMap((r) => r.tracked));
  const storedAt = new Map();
  const requests = polar.requests;
  for (const r of requests) {
    if (r.kind !== 'ingest' || r.status !== 200) continue;
    for (const e of r.body.events) if (!storedAt.has(e.metadata.k)) storedAt.set(e.metadata.k, r.at.getTime());
  }
  const copies = new Map();
  for (const e of polar.events) copies.set(e.metadata.k, (copies.get(e.metadata.k) ?? 0) + 1);
  // An event never stored counts as slower than any stored one.
  const delivery = [...trackedAt].map(([k, t]) => (storedAt.has(k) ? (storedAt.get(k) - t) / 1000 : Infinity)).sort((a, b) => a - b);
  const inTrack = requests.filter((r) => r.at.getTime() >= start && r.at.getTime() < start + TRACK_MS);
  const minutes = TRACK_MS / 60_000;
  const perMinute = (list) => Math.round(list.length / minutes);
  // The busiest 60 s of the whole run (any start), as Polar's fixed windows could see it.
  const times = requests.map((r) => r.at.getTime()).sort((a, b) => a - b);
  let busiest = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= 60_000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  const out = {
    side,
    devices: DEVICES,
    tracked: trackedAt.size,
    polarRequests: requests.length,
    ingestPerMinute: perMinute(inTrack.filter((r) => r.kind === 'ingest')),
    listPerMinute: perMinute(inTrack.filter((r) => r.kind === 'list')),
    totalPerMinute: perMinute(inTrack),
    busiestMinute: busiest,
    polar429: requests.filter((r) => r.status === 429).length,
    eventsPerIngest: +(
      requests.filter((r) => r.kind === 'ingest' && r.status === 200).reduce((n, r) => n + r.body.events.length, 0) /
      Math.max(1, requests.filter((r) => r.kind === 'ingest' && r.status === 200).length)
    ).toFixed(1),
    p50: +quantile(delivery, 0.5).toFixed(2),
    p99: +quantile(delivery, 0.99).toFixed(2),
    max: +(delivery.filter(Number.isFinite).at(-1) ?? NaN).toFixed(2),
    notStored: [...trackedAt.keys()].filter((k) => !storedAt.has(k)).length,
    stillWaiting: results.reduce((n, r) => n + r.waiting, 0),
    duplicated: [...copies.values()].filter((n) => n > 1).length,
    reconciles: results.reduce((n, r) => n + r.reconciles, 0),
    reconcileErrors: results.reduce((n, r) => n + r.reconcileErrors, 0),
    trackErrors: results.reduce((n, r) => n + r.trackErrors, 0),
    seconds: Math.round((ended - start) / 1000),
    trackCommitMs: (() => {
      const ms = results.flatMap((r) => r.commitMs).sort((a, b) => a - b);
      return [quantile(ms, 0.5), quantile(ms, 0.99)];
    })(),
    simulatorLagMs: (() => {
      const lags = results.flatMap((r) => r.lags).sort((a, b) => a - b);
      return [quantile(lags, 0.5), quantile(lags, 0.99)];
    })(),
    relayHoldMs: holdMs.length
      ? [
          quantile(
            holdMs.sort((a, b) => a - b),
            0.5,
          ),
          quantile(holdMs, 0.99),
        ]
      : undefined,
    polarIngestMs: polarMs.length
      ? [
          quantile(
            polarMs.sort((a, b) => a - b),
            0.5,
          ),
          quantile(polarMs, 0.99),
        ]
      : undefined,
    relay: stats && { eventsPerPolarRequest: +stats.eventsPerPolarRequest.toFixed(1), answers: stats.answers, rateLimited: stats.rateLimited },
  };
  await polar.close();
  return out;
}

console.log(
  `bench:relay: ${DEVICES} devices × one event every ${EVERY_MS / 1000} s for ${TRACK_MS / 60_000} min, a reconcile every ${RECONCILE_MS / 60_000} min each, ${WORKERS} workers; mock Polar at 500 requests/min`,
);
const rows = [];
for (const side of SIDES) {
  const r = await run(side);
  rows.push(r);
  console.log(JSON.stringify(r));
}
const cell = (r, k) => String(r[k]);
const lines = [
  ['', ...rows.map((r) => (r.side === 'relay' ? 'relay (window 1 s, budget 300/min)' : 'one-to-one forwarder'))],
  ['Polar ingest requests/min', ...rows.map((r) => cell(r, 'ingestPerMinute'))],
  ['Polar list requests/min', ...rows.map((r) => cell(r, 'listPerMinute'))],
  ['Polar requests/min (all)', ...rows.map((r) => cell(r, 'totalPerMinute'))],
  ['busiest 60 s', ...rows.map((r) => cell(r, 'busiestMinute'))],
  ['answered 429 by Polar', ...rows.map((r) => cell(r, 'polar429'))],
  ['events per accepted ingest', ...rows.map((r) => cell(r, 'eventsPerIngest'))],
  ['delivery p50 / p99 (s)', ...rows.map((r) => `${r.p50} / ${r.p99}`)],
  [`target p99 ≤ ${FLUSH_INTERVAL / 1000 + 2} s`, ...rows.map((r) => (r.p99 <= FLUSH_INTERVAL / 1000 + 2 ? 'met' : 'not met'))],
  ['tracked / not stored at the end', ...rows.map((r) => `${r.tracked} / ${r.notStored}`)],
  ['lost (neither stored nor waiting)', ...rows.map((r) => String(r.notStored - Math.min(r.notStored, r.stillWaiting)))],
  ['stored twice', ...rows.map((r) => cell(r, 'duplicated'))],
  ['reconciles (errors)', ...rows.map((r) => `${r.reconciles} (${r.reconcileErrors})`)],
  ['track() commit p50 / p99 (ms)', ...rows.map((r) => r.trackCommitMs.join(' / '))],
  ['simulator timer lag p50 / p99 (ms)', ...rows.map((r) => r.simulatorLagMs.join(' / '))],
  ['relay holds a device request p50 / p99 (ms)', ...rows.map((r) => (r.relayHoldMs ? r.relayHoldMs.join(' / ') : '-'))],
];
console.log(
  `\n${lines
    .map((l) => `| ${l.join(' | ')} |`)
    .join('\n')
    .replace(/\n/, `\n|${' --- |'.repeat(rows.length + 1)}\n`)}`,
);
