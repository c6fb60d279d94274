// Browsers report usage without ever holding the Polar token: the relay of polar-event-buffer,
// mounted in plain node:http.
//
//   browser: createEventBuffer({ transport: httpTransport({ baseUrl: '/usage' }) })
//        │  POST /usage/v1/events/ingest   (same paths and JSON as Polar's API)
//        ▼  GET  /usage/v1/events/         (reconcile)     POST /usage/v1/customer-sessions/ (portal)
//   this server: who is signed in? → the relay forces the customer, checks members, scopes ids,
//        │       and sends all devices' events of each second to Polar as one request
//        ▼
//   Polar (or, in the example's test, polar-event-buffer/mock-server)
//
// Run it:  POLAR_ACCESS_TOKEN=polar_oat_... node examples/proxy-server/server.mjs
//          (POLAR_SERVER_URL=https://sandbox-api.polar.sh for the sandbox; PORT, default 8787)
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { createRelay, nodeListener } from 'polar-event-buffer/relay';

/**
 * Creates the usage server (not listening yet: call `server.listen()`).
 *
 * @param {import('polar-event-buffer/relay').RelayOptions} options The relay's options: at least
 *   `accessToken` and `authenticate`; here `prefix` defaults to "/usage".
 * @returns {{ server: import('node:http').Server, relay: import('polar-event-buffer/relay').Relay }}
 */
export function createUsageServer(options) {
  const relay = createRelay({ prefix: '/usage', ...options });
  const server = createServer(nodeListener(relay));
  return { server, relay };
}

// ---- a toy session store: replace with your own authentication -------------------------------

/**
 * Reads `Authorization: Bearer <session>` or the `session` cookie and looks the user up.
 * @param {Map<string, import('polar-event-buffer/relay').RelaySession>} sessions session token → who is signed in
 * @returns {(request: Request) => import('polar-event-buffer/relay').RelaySession | null}
 */
export function sessionAuthenticator(sessions) {
  return (request) => {
    const bearer = /^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
    const cookie = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.get('cookie') ?? '')?.[1];
    const token = bearer ?? (cookie && decodeURIComponent(cookie));
    return (token && sessions.get(token)) ?? null;
  };
}

// ---- node examples/proxy-server/server.mjs -----------------------------------------------------

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const accessToken = process.env.POLAR_ACCESS_TOKEN;
  if (!accessToken) {
    console.error('Set POLAR_ACCESS_TOKEN to an organization access token (Polar dashboard → Settings → Developers).');
    process.exit(1);
  }
  const baseUrl = process.env.POLAR_SERVER_URL ?? 'https://api.polar.sh';
  const sessions = new Map([['demo-session', { externalCustomerId: 'user_42' }]]); // your login flow fills this
  const port = Number(process.env.PORT ?? 8787);
  const { server, relay } = createUsageServer({
    accessToken,
    baseUrl,
    authenticate: sessionAuthenticator(sessions),
    onEvent: (event) => event.type === 'error' && console.error(`[usage relay] ${event.message}`),
  });
  server.listen(port, () => console.log(`Usage relay on http://localhost:${port}/usage → ${baseUrl}`));
  // A redeploy: what waits goes to Polar and every device gets its answer (it would resend anyway).
  process.once('SIGTERM', async () => {
    await relay.close();
    server.close();
  });
}
