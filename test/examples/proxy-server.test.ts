// examples/proxy-server: a browser-side buffer → the proxy → Polar (here the mock server, as the
// SDK's serverURL). Proves the signed-in user is forced as the customer and that Polar's answers
// reach the browser's buffer unchanged enough for it to do the right thing.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Polar } from '@polar-sh/sdk';
import { afterEach, describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { createMirror } from '../../src/mirror/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import type { MockPolarOptions, MockPolarServer } from '../../src/mock-server/index.js';
// @ts-expect-error the example is plain JavaScript (no declarations), as users would copy it
import { createProxyServer, sessionAuthenticator } from '../../examples/proxy-server/server.mjs';

const TOKEN = 'polar_oat_proxy_test';
const ALICE_SESSION = 'session-alice';
const BOB_SESSION = 'session-bob';
/** A customer whose id contains the separator: `alice:x` + `y` must not become `alice` + `x:y`. */
const COLON_SESSION = 'session-colon';
/** Team sessions: customer `acme` with member `ann`, customer `globex` with member `gus`. */
const ANN_SESSION = 'session-ann';
const GUS_SESSION = 'session-gus';
const SESSIONS = new Map<string, string | { customer: string; members: string[] }>([
  [ALICE_SESSION, 'alice'],
  [BOB_SESSION, 'bob'],
  [COLON_SESSION, 'alice:x'],
  [ANN_SESSION, { customer: 'acme', members: ['ann'] }],
  [GUS_SESSION, { customer: 'globex', members: ['gus'] }],
]);
const startPolar = useMockPolar();
const close = autoClose();

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

const logged: string[] = [];

async function setup(options: Omit<MockPolarOptions, 'token'> = {}) {
  logged.length = 0;
  const polar = await startPolar({ ...options, token: TOKEN });
  const sdk = new Polar({ accessToken: TOKEN, serverURL: polar.url, retryConfig: { strategy: 'none' } });
  const server: Server = createProxyServer({
    polar: sdk,
    authenticate: sessionAuthenticator(SESSIONS),
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
  /** What a forged request from a browser looks like: raw JSON, not the buffer's. */
  const post = async (session: string, events: unknown[]) => {
    const response = await fetch(`${proxyUrl}/v1/events/ingest`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${session}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    return { status: response.status, body: (await response.json()) as { detail?: { loc: unknown[] }[] } };
  };
  return { polar, proxyUrl, browserBuffer, post };
}

/** The events the proxy sent to Polar, request by request (its actual bodies). */
function sentEvents(polar: MockPolarServer): Record<string, unknown>[][] {
  return polar.ingestRequests().map((r) => (r.body as { events: Record<string, unknown>[] }).events);
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
    expect(sentEvents(polar).map((events) => events.map((e) => e['external_id']))).toEqual([[`alice:${event.externalId}`], [`alice:${event.externalId}`]]);
    expect(polar.storedExternalIds()).toEqual([`alice:${event.externalId}`]);
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

  test("an invalid event is refused with its index, in Polar's 422 shape, before Polar is called", async () => {
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

  test("Polar's Retry-After reaches the browser", async () => {
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

  test("listing events returns the signed-in user's events only, whatever customer is asked for", async () => {
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

  describe('members', () => {
    test("the session's member is set on events that name none, with the customer forced", async () => {
      const { polar, post } = await setup();

      const answer = await post(ANN_SESSION, [{ name: 'api_call', external_customer_id: 'globex' }]);

      expect(answer.status).toBe(200);
      expect(sentEvents(polar)[0]!.map((e) => [e['external_customer_id'], e['external_member_id'], e['member_id']])).toEqual([['acme', 'ann', undefined]]);
      expect(polar.events.map((e) => [e.external_customer_id, e.external_member_id])).toEqual([['acme', 'ann']]);
    });

    test('a member of another customer, or a member_id, is refused with its index; nothing reaches Polar', async () => {
      const { polar, post } = await setup();

      const answer = await post(ANN_SESSION, [
        { name: 'api_call', external_member_id: 'ann' },
        { name: 'api_call', external_customer_id: 'globex', external_member_id: 'gus' },
        { name: 'api_call', member_id: '5f0c2a4e-8b1d-4e6f-9a3c-7d2e1b0f4a6c' },
      ]);

      expect(answer.status).toBe(422);
      expect(answer.body.detail!.map((d) => d.loc)).toEqual([
        ['body', 'events', 1, 'external_member_id'],
        ['body', 'events', 2, 'member_id'],
      ]);
      expect(polar.requests).toHaveLength(0);
    });

    test('a user without a team cannot name a member', async () => {
      const { polar, post } = await setup();

      const answer = await post(ALICE_SESSION, [{ name: 'api_call', external_member_id: 'gus' }]);

      expect(answer.status).toBe(422);
      expect(answer.body.detail!.map((d) => d.loc)).toEqual([['body', 'events', 0, 'external_member_id']]);
      expect(polar.requests).toHaveLength(0);
    });
  });

  describe('ids chosen by the browser', () => {
    test("another user's external_id does not collide: both are stored, and Polar counts the second as inserted", async () => {
      const { polar, post } = await setup();

      expect((await post(BOB_SESSION, [{ name: 'api_call', external_id: 'x:y' }])).status).toBe(200);
      expect((await post(ALICE_SESSION, [{ name: 'api_call', external_id: 'x:y' }])).status).toBe(200);
      // `alice:x` + `y` would be `alice:x:y` = `alice` + `x:y` without the customer's encoding.
      expect((await post(COLON_SESSION, [{ name: 'api_call', external_id: 'y' }])).status).toBe(200);

      expect(polar.ingestRequests().map((r) => r.result)).toEqual([
        { inserted: 1, duplicates: 0 },
        { inserted: 1, duplicates: 0 },
        { inserted: 1, duplicates: 0 },
      ]);
      expect(polar.stored().map((s) => [s.event.external_customer_id, s.externalId])).toEqual([
        ['bob', 'bob:x:y'],
        ['alice', 'alice:x:y'],
        ['alice:x', 'alice%3Ax:y'],
      ]);
    });

    test('a batch sent twice by the same user is counted once', async () => {
      const { polar, post } = await setup();
      const batch = [
        { name: 'api_call', external_id: 'e1' },
        { name: 'api_call', external_id: 'e2' },
      ];

      await post(ALICE_SESSION, batch);
      await post(ALICE_SESSION, batch);

      expect(polar.ingestRequests().map((r) => r.result)).toEqual([
        { inserted: 2, duplicates: 0 },
        { inserted: 0, duplicates: 2 },
      ]);
      expect(polar.storedExternalIds()).toEqual(['alice:e1', 'alice:e2']);
    });

    test("a parent_id naming another user's external_id cannot attach to that event", async () => {
      const { polar, post, browserBuffer } = await setup();
      await post(BOB_SESSION, [{ name: 'request', external_id: 'root' }]);
      const buffer = browserBuffer(ALICE_SESSION);
      await buffer.track({ name: 'request', externalCustomerId: 'alice', externalId: 'mine' });
      await buffer.track({ name: 'step', externalCustomerId: 'alice', parentId: 'mine' });
      await buffer.track({ name: 'step', externalCustomerId: 'alice', parentId: 'root' });

      const report = await buffer.flush();

      // Scoped to alice, 'root' names no event (the mock refuses an unknown parent; Polar would
      // keep the child waiting for an `alice:root` that only alice can send).
      expect(sentEvents(polar)[1]!.map((e) => e['parent_id'])).toEqual([undefined, 'alice:mine', 'alice:root']);
      expect(report).toMatchObject({ sent: 2, deadLettered: 1 });
      const [bobRoot, aliceRoot, aliceStep] = polar.events;
      expect(bobRoot).toMatchObject({ external_customer_id: 'bob', child_count: 0 });
      expect(aliceStep).toMatchObject({ external_customer_id: 'alice', parent_id: aliceRoot!.id });
      expect(polar.events.filter((e) => e.parent_id === bobRoot!.id)).toEqual([]);
    });

    test("a child sent first is never adopted by another user's event that arrives later with the id it names", async () => {
      // The newest Polar keeps a child whose parent has not arrived and links it when one does.
      const { polar, post, browserBuffer } = await setup({ orphans: 'hidden' });
      const buffer = browserBuffer(ALICE_SESSION);
      await buffer.track({ name: 'step', externalCustomerId: 'alice', parentId: 'root' });
      expect(await buffer.flush()).toMatchObject({ sent: 1, deadLettered: 0 });

      await post(BOB_SESSION, [{ name: 'request', external_id: 'root' }]);
      expect(polar.events.map((e) => [e.external_customer_id, e.parent_id, e.child_count])).toEqual([
        ['alice', null, 0],
        ['bob', null, 0],
      ]);

      await post(ALICE_SESSION, [{ name: 'request', external_id: 'root' }]);
      const [aliceStep, , aliceRoot] = polar.events;
      expect([aliceStep!.parent_id, aliceRoot!.child_count]).toEqual([aliceRoot!.id, 1]);
    });

    test("a parent_id naming another user's Polar event id is refused; the user's own is kept", async () => {
      const { polar, post } = await setup();
      await post(BOB_SESSION, [{ name: 'request' }]);
      await post(ALICE_SESSION, [{ name: 'request' }]);
      const [bobEvent, aliceEvent] = polar.events;

      const answer = await post(ALICE_SESSION, [
        { name: 'step', parent_id: aliceEvent!.id },
        { name: 'step', parent_id: bobEvent!.id.toUpperCase() },
      ]);

      expect(answer.status).toBe(422);
      expect(answer.body.detail!.map((d) => d.loc)).toEqual([['body', 'events', 1, 'parent_id']]);
      expect(polar.ingestRequests()).toHaveLength(2);

      expect((await post(ALICE_SESSION, [{ name: 'step', parent_id: aliceEvent!.id }])).status).toBe(200);
      expect(polar.events.map((e) => [e.external_customer_id, e.parent_id, e.child_count])).toEqual([
        ['bob', null, 0],
        ['alice', null, 1],
        ['alice', aliceEvent!.id, 0],
      ]);
    });

    test('when Polar cannot answer a parent check, the browser gets its status and Retry-After, and nothing is sent', async () => {
      const { polar, proxyUrl, post } = await setup();
      await post(ALICE_SESSION, [{ name: 'request' }]);
      polar.addFaults({ match: 'any', status: 503, retryAfter: 3 });

      const response = await fetch(`${proxyUrl}/v1/events/ingest`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${ALICE_SESSION}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ events: [{ name: 'step', parent_id: polar.events[0]!.id }] }),
      });

      expect([response.status, response.headers.get('retry-after')]).toEqual([503, '3']);
      expect(polar.requests.map((r) => [r.kind, r.status])).toEqual([
        ['ingest', 200],
        ['get', 503],
      ]);
    });

    test("a child of an event sent in an earlier flush attaches by the buffer's own id (a UUID Polar does not know)", async () => {
      const { polar, browserBuffer } = await setup();
      const buffer = browserBuffer(ALICE_SESSION);
      const parent = await buffer.track({ name: 'request', externalCustomerId: 'alice' });
      await buffer.flush();
      await buffer.track({ name: 'step', externalCustomerId: 'alice', parentId: parent.externalId });

      expect(await buffer.flush()).toMatchObject({ sent: 1, deadLettered: 0 });

      // The proxy asked Polar whether the UUID is an event id (404), then scoped it like an external_id.
      expect(polar.requests.filter((r) => r.kind === 'get').map((r) => [r.path, r.status])).toEqual([[`/v1/events/${parent.externalId}`, 404]]);
      const [stored, child] = polar.events;
      expect(child!.parent_id).toBe(stored!.id);
    });
  });

  test('reconcile through the proxy confirms what the buffer sent: content matching needs no external_id', async () => {
    const { browserBuffer } = await setup();
    const buffer = browserBuffer(ALICE_SESSION);
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 3 } });
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 4 } });
    await buffer.flush();
    const mirror = createMirror(buffer);

    const report = await mirror.reconcile({ externalCustomerId: 'alice' });

    expect(report).toMatchObject({ fetched: 2, matched: 2 });
    expect(await buffer.stats()).toMatchObject({ sent: 0, confirmed: 2 });
  });

  test("listing passes on only the filters reconcile uses, and never another user's events or ids", async () => {
    const { polar, proxyUrl, post } = await setup();
    await post(BOB_SESSION, [{ name: 'request', metadata: { secret: 'bob' } }]);
    await post(ALICE_SESSION, [{ name: 'request' }]);
    const [bobEvent] = polar.events;

    const response = await fetch(
      `${proxyUrl}/v1/events/?customer_id=${bobEvent!.customer_id ?? ''}&external_customer_id=bob&parent_id=${bobEvent!.id}` +
        `&depth=1&aggregate_fields=secret&organization_id=${polar.organizationId}&name=request&sorting=timestamp&page=1&limit=100`,
      { headers: { Authorization: `Bearer ${ALICE_SESSION}` } },
    );

    expect(response.status).toBe(200);
    const text = await response.text();
    expect((JSON.parse(text) as { items: { external_customer_id: string }[] }).items.map((e) => e.external_customer_id)).toEqual(['alice']);
    expect(text).not.toContain(bobEvent!.id);
    expect(text).not.toContain('bob');
    expect(polar.requests.filter((r) => r.kind === 'list').map((r) => r.query)).toEqual([
      { name: 'request', sorting: 'timestamp', page: '1', limit: '100', external_customer_id: 'alice' },
    ]);
  });
});
