// examples/proxy-server: a browser-side buffer → the example server (the relay in node:http) →
// Polar (here the mock server). Proves the example wires the relay so that the signed-in user is
// forced as the customer, devices' flushes are merged, and Polar's answers reach the buffer.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { createMirror } from '../../src/mirror/index.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { createUsageServer, sessionAuthenticator } from '../../examples/proxy-server/server.mjs';

const TOKEN = 'polar_oat_proxy_test';
const SESSIONS = new Map<string, unknown>([
  ['session-alice', { externalCustomerId: 'alice' }],
  ['session-bob', { externalCustomerId: 'bob' }],
  ['session-ann', { externalCustomerId: 'acme', externalMemberIds: ['ann'] }],
]);
const startPolar = useMockPolar();
const close = autoClose();
const running: { server: Server; relay: { close(): Promise<void> } }[] = [];
afterEach(async () => {
  for (const { server, relay } of running.splice(0)) {
    await relay.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function setup(window = 0) {
  const polar: MockPolarServer = await startPolar({ token: TOKEN });
  const started = createUsageServer({ accessToken: TOKEN, baseUrl: polar.url, authenticate: sessionAuthenticator(SESSIONS as never), window });
  running.push(started);
  await new Promise<void>((resolve) => started.server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(started.server.address() as AddressInfo).port}/usage`;
  const browserBuffer = (session: string | null) => {
    const buffer = createEventBuffer({
      transport: httpTransport({ baseUrl: url, headers: (): Record<string, string> => (session ? { Authorization: `Bearer ${session}` } : {}) }),
      indexedDB: freshIndexedDB(),
      autoFlush: false,
      retry: { retries: 0, minTimeout: 0, maxTimeout: 0, randomize: false },
    });
    close(buffer);
    return buffer;
  };
  return { polar, url, relay: started.relay, browserBuffer };
}

describe('examples/proxy-server (the relay in node:http)', () => {
  test("a browser's events reach Polar under the signed-in user, with the organization token", async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer('session-alice');
    await buffer.track({ name: 'api_call', externalCustomerId: 'mallory', metadata: { tokens: 12 } });
    await buffer.track({ name: 'api_call', customerId: '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a', metadata: { tokens: 30 } });

    expect(await buffer.flush()).toMatchObject({ sent: 2, remaining: 0 });

    expect(polar.events.map((e) => [e.external_customer_id, e.customer_id, e.metadata])).toEqual([
      ['alice', null, { tokens: 12 }],
      ['alice', null, { tokens: 30 }],
    ]);
    expect(polar.ingestRequests().map((r) => r.headers.authorization)).toEqual([`Bearer ${TOKEN}`]);
  });

  test('the flushes of several browsers within the window cost Polar one request', async () => {
    const { polar, relay, browserBuffer } = await setup(1500);
    const buffers = ['session-alice', 'session-bob', 'session-ann'].map(browserBuffer);
    for (const b of buffers) await b.track({ name: 'api_call', externalCustomerId: 'x' });

    const reports = await Promise.all(buffers.map((b) => b.flush()));

    expect(reports.map((r) => r.sent)).toEqual([1, 1, 1]);
    expect(polar.events.map((e) => [e.external_customer_id, e.external_member_id]).sort()).toEqual([
      ['acme', 'ann'],
      ['alice', null],
      ['bob', null],
    ]);
    expect(relay.stats()).toMatchObject({ polarIngestRequests: 1, eventsPerPolarRequest: 3 });
  });

  test('a browser with no session is refused, keeps its events, and nothing reaches Polar', async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer(null);
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice' });

    expect((await buffer.flush()).sent).toBe(0);
    expect((await buffer.stats()).pending).toBe(1);
    expect(polar.requests).toHaveLength(0);
  });

  test("Polar's Retry-After reaches the browser, which keeps its events", async () => {
    const { polar, url } = await setup();
    polar.addFaults({ status: 429, retryAfter: 7 });
    const response = await fetch(`${url}/v1/events/ingest`, {
      method: 'POST',
      headers: { Authorization: 'Bearer session-alice', 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: [{ name: 'ok' }] }),
    });

    expect([response.status, response.headers.get('retry-after')]).toEqual([429, '7']);
  });

  test('reconcile through the example confirms what the buffer sent, from a list scoped to the user', async () => {
    const { polar, browserBuffer } = await setup();
    polar.addEvents([{ name: 'api_call', external_customer_id: 'bob', metadata: {} }]);
    const buffer = browserBuffer('session-alice');
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 3 } });
    await buffer.flush();

    const report = await createMirror(buffer).reconcile({ externalCustomerId: 'bob' });

    expect(report).toMatchObject({ fetched: 1, matched: 1 });
    expect(polar.requests.filter((r) => r.kind === 'list').map((r) => r.query['external_customer_id'])).toEqual(['alice']);
  });

  test('the session cookie works as well as a bearer token', async () => {
    const { url } = await setup();
    const response = await fetch(`${url}/v1/events/?limit=10`, { headers: { Cookie: 'theme=dark; session=session-alice' } });

    expect(response.status).toBe(200);
  });
});
