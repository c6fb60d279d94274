// Meters on the mock: GET /v1/meters/, POST /v1/customer-sessions/ and the customer's own meters at
// GET /v1/customer-portal/meters/, computed from the stored events (polarsource/polar
// server/polar/meter/, customer_session/, customer_portal/, customer_meter/service.py).
import { describe, expect, it, vi } from 'vitest';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { useMockPolar } from '../helpers/mock-server.js';

const start = useMockPolar();
const TOKEN = 'polar_oat_meters';
const ALICE = '7e1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b';
const BOB = '8f2d3c4b-5e6f-4a71-9b0c-1d2e3f4a5b6c';

const tokens = {
  id: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  name: 'AI tokens',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'llm' }] },
  aggregation: { func: 'sum', property: 'tokens' },
};
const calls = {
  id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
  name: 'API calls',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
  aggregation: { func: 'count' },
};

async function api(s: MockPolarServer, method: string, path: string, token: string | null, body?: unknown) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['authorization'] = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`${s.url}${path}`, init);
  return { status: res.status, body: (await res.json()) as any };
}

async function setup(options: Parameters<typeof start>[0] = {}) {
  const s = await start({
    token: TOKEN,
    customers: [
      { id: ALICE, external_id: 'alice', email: 'alice@example.com' },
      { id: BOB, external_id: 'bob', email: 'bob@example.com' },
    ],
    meters: [tokens],
    // Live meters here; the meter job's debounce has its own tests (polar-today.test.ts).
    meterLag: 0,
    ...options,
  });
  return s;
}

async function session(s: MockPolarServer, body: unknown): Promise<string> {
  const r = await api(s, 'POST', '/v1/customer-sessions/', TOKEN, body);
  expect(r.status).toBe(201);
  return r.body.token;
}

describe('GET /v1/meters/', () => {
  it('lists the meters given and added, sorted by name, in Polar pagination, with the organization token', async () => {
    const s = await setup();
    s.addMeter(calls);
    const r = await api(s, 'GET', '/v1/meters/?limit=1', TOKEN);
    expect(r.status).toBe(200);
    expect(r.body.pagination).toEqual({ total_count: 2, max_page: 2 });
    expect(r.body.items).toHaveLength(1);
    // "AI tokens" sorts before "API calls".
    expect(r.body.items[0]).toMatchObject({
      id: tokens.id,
      name: 'AI tokens',
      unit: 'scalar',
      filter: tokens.filter,
      aggregation: tokens.aggregation,
      organization_id: s.organizationId,
      archived_at: null,
      metadata: {},
    });
    expect((await api(s, 'GET', '/v1/meters/?page=2&limit=1', TOKEN)).body.items[0].id).toBe(calls.id);
    expect((await api(s, 'GET', '/v1/meters/', null)).status).toBe(401);
  });

  it("refuses a meter Polar's schema refuses, naming the path", async () => {
    const s = await setup();
    expect(() =>
      s.addMeter({ name: 'bad', filter: { conjunction: 'and', clauses: [{ property: 'x', operator: 'near', value: 1 }] }, aggregation: { func: 'count' } }),
    ).toThrow(/filter\.clauses\.0\.operator/);
    expect(s.meters).toHaveLength(1);
  });
});

describe('POST /v1/customer-sessions/', () => {
  it('opens a session by customer_id or external_customer_id and answers Polar shape', async () => {
    const s = await setup();
    const r = await api(s, 'POST', '/v1/customer-sessions/', TOKEN, { external_customer_id: 'alice' });
    expect(r.status).toBe(201);
    expect(r.body.token).toMatch(/^polar_cst_/);
    expect(r.body.customer_id).toBe(ALICE);
    expect(r.body.customer.email).toBe('alice@example.com');
    expect(Date.parse(r.body.expires_at) - Date.parse(r.body.created_at)).toBe(3_600_000);
    expect(r.body.customer_portal_url).toContain(`customer_session_token=${r.body.token}`);
    const byId = await api(s, 'POST', '/v1/customer-sessions/', TOKEN, { customer_id: BOB });
    expect(byId.body.customer_id).toBe(BOB);
    expect(byId.body.token).not.toBe(r.body.token);
  });

  it('answers 422 for an unknown customer and for a body naming none, and 401 without the token', async () => {
    const s = await setup();
    const unknown = await api(s, 'POST', '/v1/customer-sessions/', TOKEN, { external_customer_id: 'carol' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.detail).toEqual([{ loc: ['body', 'external_customer_id'], msg: 'Customer does not exist.', type: 'value_error', input: 'carol' }]);
    const none = await api(s, 'POST', '/v1/customer-sessions/', TOKEN, {});
    expect(none.status).toBe(422);
    expect(none.body.detail.map((d: any) => d.loc)).toEqual([
      ['body', 'CustomerSessionCustomerIDCreate', 'customer_id'],
      ['body', 'CustomerSessionCustomerExternalIDCreate', 'external_customer_id'],
    ]);
    expect((await api(s, 'POST', '/v1/customer-sessions/', null, { customer_id: ALICE })).status).toBe(401);
  });
});

describe('GET /v1/customer-portal/meters/', () => {
  it("answers the session customer's meters only, with usage from the stored events and credits", async () => {
    const s = await setup();
    s.addMeter(calls);
    s.credit('alice', tokens.id, 1000);
    s.credit({ customerId: ALICE }, tokens.id, -100);
    s.credit('bob', tokens.id, 50);
    const ingest = await api(s, 'POST', '/v1/events/ingest', TOKEN, {
      events: [
        { name: 'llm', external_customer_id: 'alice', metadata: { tokens: 120 } },
        { name: 'llm', customer_id: ALICE, metadata: { tokens: 30.5 } },
        { name: 'llm', external_customer_id: 'alice', metadata: { tokens: 'many' } },
        { name: 'api_call', external_customer_id: 'alice' },
        { name: 'llm', external_customer_id: 'bob', metadata: { tokens: 7 } },
      ],
    });
    expect(ingest.status).toBe(200);

    const alice = await session(s, { external_customer_id: 'alice' });
    const r = await api(s, 'GET', '/v1/customer-portal/meters/', alice);
    expect(r.status).toBe(200);
    expect(r.body.pagination).toEqual({ total_count: 1, max_page: 1 });
    const [item] = r.body.items;
    // API calls has usage but no grant: Polar lists only meters the customer was granted.
    expect(item).toMatchObject({
      customer_id: ALICE,
      meter_id: tokens.id,
      consumed_units: 150.5,
      credited_units: 900,
      balance: 749.5,
      meter: { id: tokens.id, name: 'AI tokens' },
    });
    expect(Object.keys(item).sort()).toEqual(
      ['balance', 'consumed_units', 'created_at', 'credited_units', 'customer_id', 'id', 'meter', 'meter_id', 'modified_at'].sort(),
    );
    expect(Object.keys(item.meter).sort()).toEqual(['created_at', 'id', 'modified_at', 'name']);

    const bob = await session(s, { customer_id: BOB });
    const b = (await api(s, 'GET', '/v1/customer-portal/meters/', bob)).body.items;
    expect(b.map((m: any) => [m.customer_id, m.consumed_units, m.credited_units, m.balance])).toEqual([[BOB, 7, 50, 43]]);
    // The credits are Polar's meter.credited system events, listed like any event.
    const credited = s.events.filter((e) => e.name === 'meter.credited');
    expect(credited.map((e) => [e.source, e.customer_id, e.metadata])).toContainEqual(['system', ALICE, { units: -100, rollover: false, meter_id: tokens.id }]);
  });

  it('keeps credits from going below zero as Polar running sum does', async () => {
    const s = await setup();
    s.credit('alice', tokens.id, 10);
    s.credit('alice', tokens.id, -50);
    s.credit('alice', tokens.id, 5);
    expect(s.customerMeters('alice')[0]).toMatchObject({ credited_units: 5, consumed_units: 0, balance: 5 });
  });

  it('counts an event once the meter job ran (meterLag), whether the list shows it yet or not (listingLag)', async () => {
    const s = await setup({ listingLag: 60_000, meterLag: 300 });
    s.credit('alice', tokens.id, 100);
    s.runMeterJobs();
    await api(s, 'POST', '/v1/events/ingest', TOKEN, { events: [{ name: 'llm', external_customer_id: 'alice', metadata: { tokens: 40 } }] });
    const alice = await session(s, { external_customer_id: 'alice' });
    expect((await api(s, 'GET', '/v1/customer-portal/meters/', alice)).body.items[0]).toMatchObject({ consumed_units: 0, credited_units: 100 });
    await vi.waitFor(async () => {
      expect((await api(s, 'GET', '/v1/customer-portal/meters/', alice)).body.items[0]).toMatchObject({ consumed_units: 40, balance: 60 });
    });
    expect((await api(s, 'GET', '/v1/events/', TOKEN)).body.items.filter((e: any) => e.name === 'llm')).toEqual([]);
  });

  it('refuses the organization token, a made-up token and an expired session', async () => {
    const s = await setup();
    s.credit('alice', tokens.id, 1);
    expect((await api(s, 'GET', '/v1/customer-portal/meters/', TOKEN)).status).toBe(401);
    expect((await api(s, 'GET', '/v1/customer-portal/meters/', 'polar_cst_forged')).status).toBe(401);
    expect((await api(s, 'GET', '/v1/customer-portal/meters/', null)).status).toBe(401);
    const alice = await session(s, { external_customer_id: 'alice' });
    s.setClockOffset(3_600_001);
    expect((await api(s, 'GET', '/v1/customer-portal/meters/', alice)).status).toBe(401);
  });
});
