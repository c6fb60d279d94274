// `npm run demo:browser`: serves this example, the built library (dist/) and its three
// dependencies from 127.0.0.1, with the mock Polar server (CORS on) next to it. It also plays the
// app's backend: it holds the meter definitions and opens customer sessions (POST
// /v1/customer-sessions/), so the page can read the customer's own credits from the portal.
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockPolar } from '../../dist/mock-server.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNTS = [
  ['/dist/', 'dist'],
  ['/node_modules/idb/', 'node_modules/idb'],
  ['/node_modules/superstruct/', 'node_modules/superstruct'],
  ['/node_modules/p-retry/', 'node_modules/p-retry'],
  ['/node_modules/is-network-error/', 'node_modules/is-network-error'],
  ['/', 'examples/browser'],
];
/** The meter the demo sells credits on: one unit per api_call event. */
export const API_CALLS = {
  id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
  name: 'API calls',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
  aggregation: { func: 'count' },
};
/** Credits each customer gets at their first session. */
export const FREE_CREDITS = 100;
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** Starts the demo; resolves to `{ url, polar, close() }`. */
export async function startDemo({ port = 0, polarPort = 0 } = {}) {
  const polar = await startMockPolar({ cors: true, port: polarPort, meters: [API_CALLS] });
  const credited = new Set();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (path === '/config.json') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify({ api: polar.url, meters: [API_CALLS] }));
      return;
    }
    // What the app's backend does for a signed-in customer: a customer session token (with the
    // organization token, which never reaches the page). A new customer gets free credits first.
    if (req.method === 'POST' && path === '/session') {
      const customer = new URL(req.url, 'http://127.0.0.1').searchParams.get('customer') ?? '';
      if (!customer) {
        res.writeHead(400).end();
        return;
      }
      if (!credited.has(customer)) {
        polar.credit(customer, API_CALLS.id, FREE_CREDITS);
        polar.runMeterJobs(); // Polar's meter job trails by 15 s; the demo shows the grant at once
        credited.add(customer);
      }
      fetch(`${polar.url}/v1/customer-sessions/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ external_customer_id: customer }),
      })
        .then(async (r) => {
          res.writeHead(r.status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
          res.end(await r.text());
        })
        .catch(() => res.writeHead(502).end());
      return;
    }
    // The "server down" switch: the mock server stops answering (connections are cut).
    if (req.method === 'POST' && path === '/control/server') {
      const online = new URL(req.url, 'http://127.0.0.1').searchParams.get('online') === 'true';
      polar.setOnline(online);
      res.writeHead(204).end();
      return;
    }
    for (const [prefix, folder] of MOUNTS) {
      if (!path.startsWith(prefix)) continue;
      const base = join(ROOT, folder);
      let file = normalize(join(base, path.slice(prefix.length)));
      if (!file.startsWith(base + sep) && file !== base) break;
      if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
      if (!existsSync(file) || file.endsWith('serve.mjs')) break;
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${server.address().port}/`;
  return {
    url,
    polar,
    async close() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
      await polar.close();
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    console.error('dist/ is missing: run `npm run build` first (npm run demo:browser does).');
    process.exit(1);
  }
  const demo = await startDemo({ port: Number(process.env.PORT ?? 5173) });
  console.log(`polar-event-buffer browser demo: ${demo.url}`);
  console.log(`mock Polar server:                ${demo.polar.url}`);
  console.log('Ctrl+C to stop.');
  process.on('SIGINT', () => demo.close().then(() => process.exit(0)));
}
