// Polar's own SDK (@polar-sh/sdk) against the mock: each call parses the answer with the SDK's
// schemas, so a shape that is not Polar's fails here. Events, members, meters, customer sessions
// and the customer portal's meters.
import { Polar } from '@polar-sh/sdk';
import { describe, expect, it } from 'vitest';
import { useMockPolar } from '../helpers/mock-server.js';

const start = useMockPolar();
const TOKEN = 'polar_oat_sdk';
const ALICE = '7e1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b';
const MEMBER = '0c2d4e6f-8a1b-4c3d-9e5f-7a8b9c0d1e2f';
const METER = {
  id: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  name: 'AI tokens',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'llm' }] },
  aggregation: { func: 'sum', property: 'tokens' },
};

async function setup() {
  const polar = await start({
    token: TOKEN,
    customers: [{ id: ALICE, external_id: 'alice', email: 'alice@example.com', name: 'Alice' }],
    members: [{ id: MEMBER, customer_id: ALICE, external_id: 'bob' }],
    meters: [METER],
  });
  const sdk = new Polar({ accessToken: TOKEN, serverURL: polar.url, retryConfig: { strategy: 'none' } });
  return { polar, sdk };
}

describe('@polar-sh/sdk against the mock', () => {
  it('ingests and lists events with members, cost and the customer, in the SDK types', async () => {
    const { polar, sdk } = await setup();
    const answer = await sdk.events.ingest({
      events: [
        { name: 'llm', customerId: ALICE, memberId: MEMBER, metadata: { tokens: 12, _cost: { amount: 0.25, currency: 'usd' } } },
        { name: 'llm', externalCustomerId: 'alice', externalMemberId: 'bob', metadata: { tokens: 30 } },
      ],
    });
    expect(answer).toEqual({ inserted: 2, duplicates: 0 });
    expect(polar.events.map((e) => [e.member_id, e.external_member_id])).toEqual([
      [MEMBER, null],
      [null, 'bob'],
    ]);
    const page = await sdk.events.list({ sorting: ['timestamp'] });
    // Both arrived in one request: Polar lists same-millisecond events in no stable order.
    const items = (page.items as any[]).sort((a, b) => (a.memberId ? -1 : b.memberId ? 1 : 0));
    expect(items.map((e) => [e.memberId ?? null, e.externalMemberId ?? null, e.customerId ?? null, e.customer?.email])).toEqual([
      [MEMBER, null, ALICE, 'alice@example.com'],
      [null, 'bob', null, 'alice@example.com'],
    ]);
    expect(items[0].metadata._cost.amount).toBe('0.25');
  });

  it('lists meters, opens a customer session and reads that customer portal meters', async () => {
    const { polar, sdk } = await setup();
    polar.credit('alice', METER.id, 100);
    await sdk.events.ingest({ events: [{ name: 'llm', externalCustomerId: 'alice', metadata: { tokens: 42 } }] });

    const meters = await sdk.meters.list({});
    expect(meters.result.items.map((m) => [m.id, m.name, m.unit])).toEqual([[METER.id, 'AI tokens', 'scalar']]);
    expect(meters.result.pagination).toEqual({ totalCount: 1, maxPage: 1 });

    const session = await sdk.customerSessions.create({ externalCustomerId: 'alice' });
    expect(session.customerId).toBe(ALICE);
    expect(session.customer.email).toBe('alice@example.com');
    expect(session.expiresAt.getTime() - session.createdAt.getTime()).toBe(3_600_000);

    // Polar recomputes the portal's meters in a debounced job (15 s): run it now.
    polar.runMeterJobs();
    const portal = new Polar({ serverURL: polar.url, retryConfig: { strategy: 'none' } });
    const mine = await portal.customerPortal.customerMeters.list({ customerSession: session.token }, {});
    expect(mine.result.items.map((m) => [m.meterId, m.consumedUnits, m.creditedUnits, m.balance, m.meter.name])).toEqual([
      [METER.id, 42, 100, 58, 'AI tokens'],
    ]);
    expect(mine.result.items[0]!.modifiedAt).toBeInstanceOf(Date);
  });

  it('parses a team customer without email and a member session (polar_mst_) in the SDK types', async () => {
    const TEAM = '3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a';
    const polar = await start({
      token: TOKEN,
      memberModel: true,
      customers: [{ id: TEAM, external_id: 'acme', type: 'team', email: null, name: 'Acme' }],
      members: [{ id: MEMBER, customer_id: TEAM, external_id: 'bob' }],
    });
    const sdk = new Polar({ accessToken: TOKEN, serverURL: polar.url, retryConfig: { strategy: 'none' } });
    await sdk.events.ingest({ events: [{ name: 'seat', externalCustomerId: 'acme', externalMemberId: 'bob' }] });
    const page = await sdk.events.list({});
    expect((page.items as any[])[0].customer).toMatchObject({ id: TEAM, email: null, type: 'team' });
    const session = await sdk.customerSessions.create({ externalCustomerId: 'acme', externalMemberId: 'bob' });
    expect(session.token).toMatch(/^polar_mst_/);
    expect(session.customer.email).toBeNull();
  });
});
