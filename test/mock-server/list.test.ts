import { describe, expect, it } from 'vitest';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { useMockPolar } from '../helpers/mock-server.js';

const start = useMockPolar();

async function list(s: MockPolarServer, query: Record<string, string | number | string[]> = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) params.append(k, String(one));
  }
  const res = await fetch(`${s.url}/v1/events/?${params}`);
  return { status: res.status, body: (await res.json()) as any };
}

const CUSTOMER = '5b0f3c2e-8a7d-4e1f-9b6c-2d4a8e0f1c3b';
const T = (minute: number) => `2025-06-02T14:${String(minute).padStart(2, '0')}:00.000Z`;

describe('mock Polar list', () => {
  it('answers items newest first with total_count and max_page by default', async () => {
    const s = await start();
    s.addEvents([1, 2, 3].map((m) => ({ name: `e${m}`, external_customer_id: 'u', timestamp: T(m) })));
    const r = await list(s);
    expect(r.status).toBe(200);
    expect(r.body.items.map((e: any) => e.name)).toEqual(['e3', 'e2', 'e1']);
    expect(r.body.pagination).toEqual({ total_count: 3, max_page: 1 });
  });

  it('sorts oldest first with sorting=timestamp', async () => {
    const s = await start();
    s.addEvents([3, 1, 2].map((m) => ({ name: `e${m}`, external_customer_id: 'u', timestamp: T(m) })));
    const r = await list(s, { sorting: 'timestamp' });
    expect(r.body.items.map((e: any) => e.name)).toEqual(['e1', 'e2', 'e3']);
  });

  it("with listing: 'postgres' breaks timestamp ties by insertion order in both directions", async () => {
    const s = await start({ listing: 'postgres' });
    s.addEvents(['a', 'b', 'c'].map((name) => ({ name, external_customer_id: 'u', timestamp: T(5) })));
    expect((await list(s, { sorting: 'timestamp' })).body.items.map((e: any) => e.name)).toEqual(['a', 'b', 'c']);
    expect((await list(s, { sorting: '-timestamp' })).body.items.map((e: any) => e.name)).toEqual(['a', 'b', 'c']);
  });

  it('paginates with a 1-based page and limit', async () => {
    const s = await start();
    s.addEvents(Array.from({ length: 25 }, (_, i) => ({ name: `e${i}`, external_customer_id: 'u', timestamp: T(i) })));
    const p1 = await list(s, { sorting: 'timestamp', limit: 10, page: 1 });
    const p3 = await list(s, { sorting: 'timestamp', limit: 10, page: 3 });
    const p4 = await list(s, { sorting: 'timestamp', limit: 10, page: 4 });
    expect(p1.body.items.map((e: any) => e.name)).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`));
    expect(p3.body.items.map((e: any) => e.name)).toEqual(['e20', 'e21', 'e22', 'e23', 'e24']);
    expect(p4.body.items).toEqual([]);
    expect(p1.body.pagination).toEqual({ total_count: 25, max_page: 3 });
  });

  it('defaults the limit to 10 and caps it at 100', async () => {
    const s = await start();
    s.addEvents(Array.from({ length: 120 }, (_, i) => ({ name: `e${i}`, external_customer_id: 'u' })));
    expect((await list(s)).body.items).toHaveLength(10);
    const big = await list(s, { limit: 500 });
    expect(big.body.items).toHaveLength(100);
    expect(big.body.pagination).toEqual({ total_count: 120, max_page: 2 });
  });

  it('rejects a page or limit below 1 and an unknown sorting with 422', async () => {
    const s = await start();
    expect((await list(s, { page: 0 })).status).toBe(422);
    expect((await list(s, { limit: 'x' })).status).toBe(422);
    const bad = await list(s, { sorting: 'name' });
    expect(bad.status).toBe(422);
    expect(bad.body.detail[0].loc).toEqual(['query', 'sorting']);
  });

  it('treats start_timestamp and end_timestamp as exclusive bounds', async () => {
    const s = await start();
    s.addEvents([1, 2, 3, 4].map((m) => ({ name: `e${m}`, external_customer_id: 'u', timestamp: T(m) })));
    const r = await list(s, { start_timestamp: T(1), end_timestamp: T(4), sorting: 'timestamp' });
    expect(r.body.items.map((e: any) => e.name)).toEqual(['e2', 'e3']);
  });

  it("with listing: 'postgres' and timestampFormat: 'isoformat' compares bounds in microseconds and writes +00:00", async () => {
    const s = await start({ listing: 'postgres', timestampFormat: 'isoformat' });
    s.addEvents([{ name: 'micro', external_customer_id: 'u', timestamp: '2025-06-02T14:00:00.000001+00:00' }]);
    expect((await list(s, { start_timestamp: '2025-06-02T14:00:00Z' })).body.items).toHaveLength(1);
    expect((await list(s, { start_timestamp: '2025-06-02T14:00:00.000001Z' })).body.items).toHaveLength(0);
    expect(s.events[0]!.timestamp).toBe('2025-06-02T14:00:00.000001+00:00');
  });

  it('filters by name, external_customer_id and customer_id', async () => {
    const s = await start({ customers: [{ id: CUSTOMER, external_id: 'known' }] });
    s.addEvents([
      { name: 'a', external_customer_id: 'u1' },
      { name: 'b', external_customer_id: 'u1' },
      { name: 'a', external_customer_id: 'u2' },
      { name: 'a', customer_id: CUSTOMER },
      { name: 'a', external_customer_id: 'known' },
    ]);
    expect((await list(s, { name: 'a' })).body.pagination.total_count).toBe(4);
    expect((await list(s, { external_customer_id: 'u1' })).body.pagination.total_count).toBe(2);
    expect((await list(s, { external_customer_id: 'u1', name: 'a' })).body.pagination.total_count).toBe(1);
    expect((await list(s, { external_customer_id: ['u1', 'u2'] })).body.pagination.total_count).toBe(3);
    // A known customer matches both by its id and by its external id.
    expect((await list(s, { customer_id: CUSTOMER })).body.pagination.total_count).toBe(2);
    expect((await list(s, { external_customer_id: 'known' })).body.pagination.total_count).toBe(2);
  });

  it('rejects a customer_id filter that is not a UUID', async () => {
    const s = await start();
    expect((await list(s, { customer_id: 'nope' })).status).toBe(422);
  });

  it('formats items like the Python server: pydantic time, decimal cost, null prompt, reordered keys, no external_id', async () => {
    const s = await start();
    const res = await fetch(`${s.url}/v1/events/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        events: [
          {
            name: 'llm',
            external_customer_id: 'u',
            external_id: 'x1',
            timestamp: '2025-06-02T16:03:07.123+02:00',
            metadata: {
              a: 1,
              b: 'two',
              _cost: { amount: 150, currency: 'usd' },
              _llm: { vendor: 'openai', model: 'gpt', input_tokens: 1, output_tokens: 2, total_tokens: 3 },
            },
          },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const item = (await list(s)).body.items[0];
    expect(item.timestamp).toBe('2025-06-02T14:03:07.123000Z');
    // The newest server stores the Decimal as a float and returns str(Decimal(str(float))): "150.0".
    expect(item.metadata._cost).toEqual({ amount: '150.0', currency: 'usd' });
    expect(item.metadata._llm.prompt).toBeNull();
    expect(item.metadata._llm.response).toBeNull();
    expect(Object.keys(item.metadata)).toEqual(['b', 'a', '_llm', '_cost']);
    expect(item).not.toHaveProperty('external_id');
    expect(item.source).toBe('user');
  });

  it('lists system events alongside user events', async () => {
    const s = await start();
    s.addSystemEvent({ name: 'customer.created', customer_id: CUSTOMER, metadata: { customer_email: 'a@b.c' }, timestamp: T(1) });
    s.addEvents([{ name: 'api.call', customer_id: CUSTOMER, timestamp: T(2) }]);
    const r = await list(s, { customer_id: CUSTOMER, sorting: 'timestamp' });
    expect(r.body.items.map((e: any) => [e.name, e.source])).toEqual([
      ['customer.created', 'system'],
      ['api.call', 'user'],
    ]);
  });

  it('keeps unknown fields of seeded events in list items', async () => {
    const s = await start();
    s.addEvents([{ name: 'x', external_customer_id: 'u', is_meter_credit: false }]);
    expect((await list(s)).body.items[0].is_meter_credit).toBe(false);
  });

  it('answers a single event by id', async () => {
    const s = await start();
    const [seeded] = s.addEvents([{ name: 'x', external_customer_id: 'u' }]);
    const res = await fetch(`${s.url}/v1/events/${seeded!.id}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).name).toBe('x');
    expect((await fetch(`${s.url}/v1/events/${crypto.randomUUID()}`)).status).toBe(404);
  });

  it('requires the bearer token on list requests too', async () => {
    const s = await start({ token: 'tok' });
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(401);
    expect((await fetch(`${s.url}/v1/events/`, { headers: { authorization: 'Bearer tok' } })).status).toBe(200);
  });
});
