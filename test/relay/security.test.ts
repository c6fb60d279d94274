import { describe, expect, test } from 'vitest';
import { createMirror } from '../../src/mirror/index.js';
import { SESSIONS, TOKEN, useRelay } from './support.js';

const setup = useRelay();
const UUID = /^[\da-f]{8}-[\da-f]{4}-5[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/;

describe('the relay as a security boundary', () => {
  test("a forged customer becomes the session's, whichever kind the device wrote", async () => {
    const { polar, post } = await setup({ window: 0 });
    polar.addCustomers({ id: '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a', external_id: 'carol' });

    expect(
      (
        await post('alice', [
          { name: 'a', external_customer_id: 'mallory' },
          { name: 'b', customer_id: '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a' },
        ])
      ).status,
    ).toBe(200);
    expect((await post('cus', [{ name: 'c', external_customer_id: 'alice' }])).status).toBe(200);

    expect(polar.events.map((e) => [e.name, e.external_customer_id, e.customer_id])).toEqual([
      ['a', 'alice', null],
      ['b', 'alice', null],
      ['c', null, '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a'],
    ]);
    // Polar was called with the organization token; no device ever sees it.
    expect(new Set(polar.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${TOKEN}`]));
  });

  test('members are set when none is named and checked when one is: another is a 422 for that event, nothing sent', async () => {
    const { polar, post } = await setup({ window: 0 });

    expect((await post('acme_ann', [{ name: 'x' }, { name: 'y', external_member_id: 'andy' }])).status).toBe(200);
    const refused = await post('acme_ann', [
      { name: 'ok', external_member_id: 'ann' },
      { name: 'bad', external_member_id: 'gus' },
      { name: 'bad', member_id: '5f0c2a4e-8b1d-4e6f-9a3c-7d2e1b0f4a6c' },
    ]);
    const alone = await post('alice', [{ name: 'bad', external_member_id: 'ann' }]);
    const byId = await post('cus', [{ name: 'ok' }, { name: 'bad', member_id: 'aaaaaaaa-8b1d-4e6f-9a3c-7d2e1b0f4a6c' }]);

    expect(polar.events.map((e) => [e.name, e.external_customer_id, e.external_member_id])).toEqual([
      ['x', 'acme', 'ann'],
      ['y', 'acme', 'andy'],
    ]);
    expect(refused.status).toBe(422);
    expect(refused.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([
      ['body', 'events', 1, 'external_member_id'],
      ['body', 'events', 2, 'member_id'],
    ]);
    expect(alone.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([['body', 'events', 0, 'external_member_id']]);
    expect(byId.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([['body', 'events', 1, 'member_id']]);
    expect(polar.ingestRequests()).toHaveLength(1);
  });

  test('external_id is scoped per customer: two customers never meet, one customer always maps to the same id', async () => {
    const { polar, post } = await setup({ window: 0 });

    await post('alice', [{ name: 'a', external_id: 'e1' }]);
    await post('bob', [{ name: 'a', external_id: 'e1' }]);
    const again = await post('alice', [{ name: 'a', external_id: 'e1' }]);

    const ids = polar.storedExternalIds();
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
    expect(ids.every((id) => UUID.test(id ?? ''))).toBe(true);
    expect(again.body).toEqual({ inserted: 0, duplicates: 1 });
    expect(polar.events.map((e) => e.external_customer_id)).toEqual(['alice', 'bob']);
  });

  test('the same device id maps to the same Polar external_id across relays, so a resend to a new relay dedupes', async () => {
    const first = await setup({ window: 0 });
    await first.post('alice', [{ name: 'a', external_id: 'e1' }]);
    const second = await setup({ window: 0, polar: first.polar });

    const answer = await second.post('alice', [{ name: 'a', external_id: 'e1' }]);

    expect(answer.body).toEqual({ inserted: 0, duplicates: 1 });
    expect(first.polar.ingestRequests().map((r) => r.result)).toEqual([
      { inserted: 1, duplicates: 0 },
      { inserted: 0, duplicates: 1 },
    ]);
  });

  test("a parent_id is the customer's own external_id first; another customer's id with that name cannot adopt it", async () => {
    const { polar, post } = await setup({ window: 0 });
    await post('bob', [{ name: 'root', external_id: 'root' }]);
    await post('alice', [{ name: 'root', external_id: 'root' }]);

    expect((await post('alice', [{ name: 'step', parent_id: 'root' }])).status).toBe(200);

    const [bobRoot, aliceRoot, step] = polar.events;
    expect(step!.parent_id).toBe(aliceRoot!.id);
    expect(bobRoot!.child_count).toBe(0);
  });

  test("a Polar event id is a parent only when it names none of the customer's events and is the customer's own", async () => {
    const { polar, post, events } = await setup({ window: 0 });
    await post('bob', [{ name: 'request' }]);
    await post('alice', [{ name: 'request' }]);
    const [bobEvent, aliceEvent] = polar.events;

    const mixed = await post('alice', [
      { name: 'step', parent_id: aliceEvent!.id },
      { name: 'step', parent_id: bobEvent!.id.toUpperCase() },
    ]);
    const own = await post('alice', [{ name: 'step', parent_id: aliceEvent!.id }]);

    expect(mixed.status).toBe(422);
    expect(mixed.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([['body', 'events', 1, 'parent_id']]);
    expect(JSON.stringify(mixed.body)).not.toContain('bob');
    expect(own.status).toBe(200);
    expect(polar.events.map((e) => [e.external_customer_id, e.parent_id])).toEqual([
      ['bob', null],
      ['alice', null],
      ['alice', aliceEvent!.id],
    ]);
    // Each Polar id was looked up once, through the budget; the second time came from the cache.
    expect(polar.requests.filter((r) => r.kind === 'get')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'polar' && e.call === 'get')).toHaveLength(2);
  });

  test("a child of an event sent in an earlier flush attaches by the buffer's own id with no lookup", async () => {
    const { polar, buffer } = await setup({ window: 0 });
    const b = buffer('alice');
    const parent = await b.track({ name: 'request', externalCustomerId: 'alice' });
    await b.flush();
    await b.track({ name: 'step', externalCustomerId: 'alice', parentId: parent.externalId });

    expect(await b.flush()).toMatchObject({ sent: 1, deadLettered: 0 });

    expect(polar.events[1]!.parent_id).toBe(polar.events[0]!.id);
    // The relay knew the parent's scoped id from Polar's 200: no GET /v1/events/{id}.
    expect(polar.requests.filter((r) => r.kind === 'get')).toEqual([]);
  });

  test("lists are always the session's customer's, whatever the query names, with only reconcile's filters passed on", async () => {
    const { polar, url } = await setup({ window: 0 });
    polar.addEvents([
      { name: 'api_call', external_customer_id: 'alice', metadata: {} },
      { name: 'api_call', external_customer_id: 'bob', metadata: { secret: 'bob' } },
    ]);

    const response = await fetch(
      `${url}/v1/events/?external_customer_id=bob&customer_id=${SESSIONS.cus && '0b5c4a3e-2f1d-4c6b-9a8e-7d6f5e4c3b2a'}&parent_id=x&name=api_call&page=1&limit=100`,
      {
        headers: { Authorization: 'Bearer alice' },
      },
    );

    const text = await response.text();
    expect(response.status).toBe(200);
    expect((JSON.parse(text) as { items: { external_customer_id: string }[] }).items.map((e) => e.external_customer_id)).toEqual(['alice']);
    expect(text).not.toContain('bob');
    expect(polar.requests.filter((r) => r.kind === 'list').map((r) => r.query)).toEqual([
      { name: 'api_call', page: '1', limit: '100', external_customer_id: 'alice' },
    ]);
  });

  test('reconcile through the relay confirms what the buffer sent', async () => {
    const { buffer } = await setup({ window: 0 });
    const b = buffer('alice');
    await b.track({ name: 'api_call', externalCustomerId: 'alice', metadata: { tokens: 3 } });
    await b.flush();

    const report = await createMirror(b).reconcile({ externalCustomerId: 'alice' });

    expect(report).toMatchObject({ fetched: 1, matched: 1 });
    expect(await b.stats()).toMatchObject({ sent: 0, confirmed: 1 });
  });

  test("the customer-session route mints a session for the session's customer only", async () => {
    const { polar, url } = await setup({ window: 0 });
    polar.addCustomers({ external_id: 'alice' }, { external_id: 'bob' });

    const response = await fetch(`${url}/v1/customer-sessions/`, {
      method: 'POST',
      headers: { Authorization: 'Bearer alice', 'Content-Type': 'application/json' },
      body: JSON.stringify({ external_customer_id: 'bob', return_url: 'https://app.example/back' }),
    });

    expect(response.status).toBe(201);
    const session = (await response.json()) as { token: string; expires_at: string; customer: { external_id: string } };
    expect(session.token).toBeTruthy();
    expect(session.expires_at).toBeTruthy();
    expect(session.customer.external_id).toBe('alice');
    expect(polar.requests.filter((r) => r.kind === 'customer-session').map((r) => r.body)).toEqual([
      { external_customer_id: 'alice', return_url: 'https://app.example/back' },
    ]);
    // The portal answers with that token for alice's meters.
    const portal = await fetch(`${polar.url}/v1/customer-portal/meters/`, { headers: { Authorization: `Bearer ${session.token}` } });
    expect(portal.status).toBe(200);
  });

  test('no session is a 401, anything else a 404, a large body a 413; Polar hears of none of them', async () => {
    const { polar, url, relay } = await setup({ window: 0, maxBodyBytes: 1000 });
    const call = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, init).then((r) => r.status);

    expect(await call('/v1/events/ingest', { method: 'POST', body: '{"events":[]}' })).toBe(401);
    expect(await call('/v1/events/ingest', { method: 'POST', headers: { Authorization: 'Bearer nobody' }, body: '{"events":[]}' })).toBe(401);
    expect(await call('/v1/meters/', { headers: { Authorization: 'Bearer alice' } })).toBe(404);
    expect(await call('/v1/events/ingest', { headers: { Authorization: 'Bearer alice' } })).toBe(404);
    expect(await call('/v1/events/123', { headers: { Authorization: 'Bearer alice' } })).toBe(404);
    expect(
      await call('/v1/events/ingest', {
        method: 'POST',
        headers: { Authorization: 'Bearer alice' },
        body: JSON.stringify({ events: [{ name: 'x'.repeat(2000) }] }),
      }),
    ).toBe(413);

    expect(polar.requests).toEqual([]);
    expect(relay.stats().answers).toEqual({ 401: 2, 404: 3, 413: 1 });
  });

  test('the access token is in no answer and no hook event, even when Polar refuses it', async () => {
    const { polar, post, events } = await setup({ window: 0 });
    polar.addFaults({ status: 401, body: { detail: `Invalid token ${TOKEN}` } });

    const answer = await post('alice', [{ name: 'a' }]);

    expect(answer.status).toBe(502);
    expect(JSON.stringify(answer.body)).not.toContain(TOKEN);
    expect(JSON.stringify(events)).not.toContain(TOKEN);
    expect(events.some((e) => e.type === 'error' && /access token/.test(e.message))).toBe(true);
  });

  test('per-user limits answer 429 with Retry-After, for requests and for events, and spend no Polar request', async () => {
    const { polar, post } = await setup({ window: 0, perUser: { requests: 2, events: 3 } });

    expect((await post('alice', [{ name: 'a' }, { name: 'b' }])).status).toBe(200);
    const events = await post('alice', [{ name: 'c' }, { name: 'd' }]);
    const requests = await post('alice', [{ name: 'e' }]);
    const other = await post('bob', [{ name: 'f' }, { name: 'g' }, { name: 'h' }]);

    expect([events.status, Number(events.retryAfter) > 0]).toEqual([429, true]);
    expect([requests.status, Number(requests.retryAfter) > 0]).toEqual([429, true]);
    expect(other.status).toBe(200);
    expect(polar.events.map((e) => e.name)).toEqual(['a', 'b', 'f', 'g', 'h']);
  });
});
