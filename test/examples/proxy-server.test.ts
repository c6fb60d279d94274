// examples/proxy-server: a browser-side buffer → the proxy → Polar (here the mock server, as the
// SDK's serverURL). Proves the signed-in user is forced as the customer and that Polar's answers
// reach the browser's buffer unchanged enough for it to do the right thing.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Polar } from '@polar-sh/sdk';
import { afterEach, describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
// @ts-expect-error the example is plain JavaScript (no declarations), as users would copy it
import { createProxyServer, sessionAuthenticator } from '../../examples/proxy-server/server.mjs';

const TOKEN = 'polar_oat_proxy_test';
const ALICE_SESSION = 'session-alice';
const startPolar = useMockPolar();
const close = autoClose();

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

const logged: string[] = [];

async function setup() {
  logged.length = 0;
  const polar = await startPolar({ token: TOKEN });
  const sdk = new Polar({ accessToken: TOKEN, serverURL: polar.url, retryConfig: { strategy: 'none' } });
  const server: Server = createProxyServer({
    polar: sdk,
    authenticate: sessionAuthenticator(new Map([[ALICE_SESSION, 'alice']])),
    prefix: '/usage',
    serverURL: polar.url,
    accessToken: TOKEN,
    log: (message: string) => logged.push(message),
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/usage`;
  const browserBuffer = (session: string | null, retries = 0) => {
    const buffer = createEventBuffer({
      transport: httpTransport({
        baseUrl: proxyUrl,
        headers: (): Record<string, string> => (session ? { Authorization: `Bearer ${session}` } : {}),
      }),
      indexedDB: freshIndexedDB(),
      autoFlush: false,
      retry: { retries, minTimeout: 0, maxTimeout: 0, randomize: false },
    });
    close(buffer);
    return buffer;
  };
  return { polar, proxyUrl, browserBuffer };
}

describe('examples/proxy-server', () => {
  test('events tracked in the browser reach Polar through the proxy', async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer(ALICE_SESSION);
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 12 } });
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 30 } });

    const report = await buffer.flush();

    expect(report).toMatchObject({ sent: 2, remaining: 0 });
    expect(polar.events.map((e) => [e.name, e.metadata])).toEqual([
      ['api_call', { tokens: 12 }],
      ['api_call', { tokens: 30 }],
    ]);
    // The proxy authenticated to Polar with the organization token, not the browser's session.
    expect(polar.ingestRequests().map((r) => r.headers.authorization)).toEqual([`Bearer ${TOKEN}`]);
  });

  test('a forged customer is overwritten with the signed-in user', async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer(ALICE_SESSION);
    await buffer.track({ name: 'api_call', externalCustomerId: 'mallory', metadata: { tokens: 1 } });
    await buffer.track({ name: 'api_call', customerId: '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a', metadata: { tokens: 2 } });

    await buffer.flush();

    expect(polar.events.map((e) => e.external_customer_id)).toEqual(['alice', 'alice']);
    expect(polar.stored().map((s) => s.event.customer_id ?? null)).not.toContain('0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a');
  });

  test('the idempotency key survives the proxy, so a resent batch is counted once', async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer(ALICE_SESSION, 1);
    const event = await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 5 } });
    // The answer is lost after Polar stored the batch: the proxy answers 502, the buffer retries.
    polar.addFaults({ drop: true, afterProcessing: true });

    const report = await buffer.flush();

    expect(polar.ingestRequests()).toHaveLength(2);
    expect(polar.storedExternalIds()).toEqual([event.externalId]);
    expect(report).toMatchObject({ sent: 1, duplicates: 1 });
    expect(logged).toEqual(['Polar could not be reached.']);
  });

  test('a browser with no session is refused and nothing reaches Polar', async () => {
    const { polar, browserBuffer } = await setup();
    const buffer = browserBuffer(null);
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 1 } });

    const report = await buffer.flush();

    expect(report.sent).toBe(0);
    expect((await buffer.stats()).pending).toBe(1);
    expect(polar.requests).toHaveLength(0);
  });

  test('an invalid event is refused with its index, in Polar\'s 422 shape, before Polar is called', async () => {
    const { polar, proxyUrl } = await setup();
    const response = await fetch(`${proxyUrl}/v1/events/ingest`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ALICE_SESSION}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: [{ name: 'ok' }, { name: '' }] }),
    });

    expect(response.status).toBe(422);
    const body = (await response.json()) as { detail: { loc: unknown[] }[] };
    expect(body.detail.map((d) => d.loc.slice(0, 4))).toEqual([['body', 'events', 1, 'name']]);
    expect(polar.requests).toHaveLength(0);
  });

  test('Polar\'s Retry-After reaches the browser', async () => {
    const { polar, proxyUrl } = await setup();
    polar.addFaults({ status: 429, retryAfter: 7 });
    const response = await fetch(`${proxyUrl}/v1/events/ingest`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ALICE_SESSION}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events: [{ name: 'ok' }] }),
    });

    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('7');
  });

  test('listing events returns the signed-in user\'s events only, whatever customer is asked for', async () => {
    const { polar, proxyUrl } = await setup();
    polar.addEvents([
      { name: 'api_call', external_customer_id: 'alice', metadata: {} },
      { name: 'api_call', external_customer_id: 'mallory', metadata: {} },
    ]);
    const response = await fetch(`${proxyUrl}/v1/events/?external_customer_id=mallory&page=1&limit=100`, {
      headers: { Cookie: `theme=dark; session=${ALICE_SESSION}` },
    });

    expect(response.status).toBe(200);
    const page = (await response.json()) as { items: { external_customer_id: string }[] };
    expect(page.items.map((e) => e.external_customer_id)).toEqual(['alice']);
  });
});
