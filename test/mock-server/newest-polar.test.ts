// The mock against the newest Polar server (polarsource/polar server/polar/event/schemas.py,
// service.py, middlewares.py, rate_limit.py): members, `_cost.amount` decimals, `_llm`, the body
// limit, the rate limit and the listing lag.
import { describe, expect, it } from 'vitest';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { useMockPolar } from '../helpers/mock-server.js';

const start = useMockPolar();

async function ingest(s: MockPolarServer, events: unknown[], headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}/v1/events/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ events }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

async function list(s: MockPolarServer, query: Record<string, string> = {}) {
  const res = await fetch(`${s.url}/v1/events/?${new URLSearchParams({ sorting: 'timestamp', ...query })}`);
  return (await res.json()) as any;
}

const CUSTOMER = '5b0f3c2e-8a7d-4e1f-9b6c-2d4a8e0f1c3b';
const MEMBER = '0c2d4e6f-8a1b-4c3d-9e5f-7a8b9c0d1e2f';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('members', () => {
  it('stores member_id with customer_id and external_member_id with external_customer_id, and lists them', async () => {
    const s = await start({ listing: 'postgres', customers: [{ id: CUSTOMER }], members: [{ id: MEMBER, customer_id: CUSTOMER }] });
    const r = await ingest(s, [
      { name: 'seat', customer_id: CUSTOMER, member_id: MEMBER.toUpperCase() },
      { name: 'seat', external_customer_id: 'acme', external_member_id: 'alice' },
      { name: 'seat', external_customer_id: 'acme' },
    ]);
    expect(r.status).toBe(200);
    const items = (await list(s)).items;
    expect(items.map((e: any) => [e.member_id, e.external_member_id])).toEqual([
      [MEMBER, null],
      [null, 'alice'],
      [null, null],
    ]);
  });

  it('drops the member field of the other union member, as pydantic ignores undeclared fields', async () => {
    const s = await start({ customers: [{ id: CUSTOMER }], members: [{ id: MEMBER, customer_id: CUSTOMER }] });
    const r = await ingest(s, [
      { name: 'a', customer_id: CUSTOMER, member_id: MEMBER, external_member_id: 'alice' },
      { name: 'b', external_customer_id: 'acme', member_id: MEMBER },
    ]);
    expect(r.status).toBe(200);
    expect(s.events.map((e) => [e.member_id, e.external_member_id])).toEqual([
      [MEMBER, null],
      [null, null],
    ]);
  });

  it('refuses member, customer and organization ids that are not version-4 UUIDs, and a non-string external_member_id', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'a', customer_id: CUSTOMER, member_id: 'alice' },
      { name: 'b', customer_id: CUSTOMER, member_id: '00000000-0000-1000-8000-000000000000' },
      { name: 'c', external_customer_id: 'acme', external_member_id: 7 },
      // customer_id and organization_id are UUID4 too.
      { name: 'd', customer_id: '00000000-0000-1000-8000-000000000000' },
      { name: 'e', external_customer_id: 'acme', organization_id: '9b4f2c7e-1d0a-1c57-8f6e-2b1f0c9d3a11' },
    ]);
    expect(r.status).toBe(422);
    const own = r.body.detail.map((d: any) => [d.loc, d.type]);
    expect(own).toContainEqual([['body', 'events', 3, 'EventCreateCustomer', 'customer_id'], 'uuid_version']);
    expect(own).toContainEqual([['body', 'events', 4, 'EventCreateExternalCustomer', 'organization_id'], 'uuid_version']);
    expect(own).toContainEqual([['body', 'events', 0, 'EventCreateCustomer', 'member_id'], 'uuid_parsing']);
    expect(own).toContainEqual([['body', 'events', 1, 'EventCreateCustomer', 'member_id'], 'uuid_version']);
    expect(own).toContainEqual([['body', 'events', 2, 'EventCreateExternalCustomer', 'external_member_id'], 'string_type']);
    expect(s.events).toHaveLength(0);
  });

  it('has no member filter on the list (Polar offers none): the parameter is ignored', async () => {
    const s = await start();
    await ingest(s, [
      { name: 'a', external_customer_id: 'acme', external_member_id: 'alice' },
      { name: 'b', external_customer_id: 'acme', external_member_id: 'bob' },
    ]);
    expect((await list(s, { external_member_id: 'alice' })).items).toHaveLength(2);
  });
});

describe('reserved metadata', () => {
  const cost = (amount: unknown, currency: unknown = 'usd') => ({
    name: 'llm',
    external_customer_id: 'u',
    metadata: { _cost: { amount, currency } },
  });

  it('returns _cost.amount as the newest server does: Decimal -> float in JSONB -> str(Decimal(str(float)))', async () => {
    const s = await start();
    const amounts = [150, 0.5, '12.345', -3, 0.00001, 1e-7, '1.500000000000000', '99999.5', '1.123456789012'];
    const r = await ingest(
      s,
      amounts.map((a) => cost(a)),
    );
    expect(r.status).toBe(200);
    expect(s.events.map((e: any) => e.metadata._cost.amount)).toEqual([
      '150.0',
      '0.5',
      '12.345',
      '-3.0',
      '0.00001',
      '1E-7',
      '1.5',
      '99999.5',
      '1.123456789012',
    ]);
  });

  it('refuses amounts past 12 decimal places, 5 whole digits or 17 digits, and non-numbers, each with pydantic type', async () => {
    const s = await start();
    const r = await ingest(s, [
      cost(100000),
      cost('0.0000000000001'),
      cost('1.1234567890123'),
      cost('12345.1234567890123'),
      cost('ten'),
      cost(true),
      cost('Infinity'),
    ]);
    expect(r.status).toBe(422);
    const types = r.body.detail.filter((d: any) => d.loc[3] === 'EventCreateExternalCustomer').map((d: any) => [d.loc[2], d.loc.slice(4).join('.'), d.type]);
    expect(types).toEqual([
      [0, 'metadata._cost.amount', 'decimal_whole_digits'],
      [1, 'metadata._cost.amount', 'decimal_max_places'],
      [2, 'metadata._cost.amount', 'decimal_max_places'],
      [3, 'metadata._cost.amount', 'decimal_max_digits'],
      [4, 'metadata._cost.amount', 'decimal_parsing'],
      [5, 'metadata._cost.amount', 'decimal_type'],
      [6, 'metadata._cost.amount', 'finite_number'],
    ]);
  });

  it('reads the currency pattern "usd" as a search, as pydantic does: "usdc" passes, "USD" does not', async () => {
    const s = await start();
    expect((await ingest(s, [cost(1, 'usdc')])).status).toBe(200);
    const r = await ingest(s, [cost(1, 'USD')]);
    expect(r.status).toBe(422);
    expect(r.body.detail.map((d: any) => d.type)).toContain('string_pattern_mismatch');
  });

  it('accepts _llm with or without cost, and drops cost and other undeclared keys', async () => {
    const s = await start();
    const llm = { vendor: 'openai', model: 'gpt', input_tokens: 1, output_tokens: 2, total_tokens: 3 };
    const r = await ingest(s, [
      { name: 'a', external_customer_id: 'u', metadata: { _llm: llm } },
      { name: 'b', external_customer_id: 'u', metadata: { _llm: { ...llm, cost: 12.5, extra: 'x' } } },
    ]);
    expect(r.status).toBe(200);
    const items = (await list(s)).items;
    for (const item of items) {
      expect(item.metadata._llm).toEqual({ ...llm, prompt: null, response: null });
    }
  });
});

describe('body and rate limits', () => {
  it('answers 413 in Polar own shape to a body over 10 MiB and takes one of exactly 10 MiB', async () => {
    const s = await start();
    const json = JSON.stringify({ events: [{ name: 'big', external_customer_id: 'u' }] });
    const exact = json + ' '.repeat(10 * 1024 * 1024 - json.length);
    const ok = await fetch(`${s.url}/v1/events/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: exact });
    expect(ok.status).toBe(200);
    const over = await fetch(`${s.url}/v1/events/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `${exact} ` });
    expect(over.status).toBe(413);
    expect(await over.json()).toEqual({
      error: 'RequestBodyTooLarge',
      detail: 'Request body exceeded the maximum allowed size of 10485760 bytes.',
    });
    expect(s.events).toHaveLength(1);
  });

  it('answers 411 to a chunked POST without Content-Length, as Polar does', async () => {
    const s = await start();
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${s.url}/v1/events/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(JSON.stringify({ events: [{ name: 'x', external_customer_id: 'u' }] }));
      req.end();
    });
    expect(status).toBe(411);
    expect(s.requests[0]!.status).toBe(411);
    expect(s.events).toHaveLength(0);
  });

  it("answers 429 with Retry-After: 60 and an empty body past the organization's budget, shared by its tokens", async () => {
    const s = await start({ token: ['a', 'b'], rateLimit: { requests: 3, window: 60_000 } });
    const get = (token: string) => fetch(`${s.url}/v1/events/`, { headers: { authorization: `Bearer ${token}` } });
    // A token's first request counts in the pending_auth group; the next three in the organization's window.
    for (let i = 0; i < 4; i++) expect((await get('a')).status).toBe(200);
    const limited = await get('a');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(await limited.text()).toBe('');
    // Another token of the organization: its first request passes (pending_auth), then the shared window is spent.
    expect((await get('b')).status).toBe(200);
    expect((await get('b')).status).toBe(429);
    expect(s.requests.map((r) => r.status)).toEqual([200, 200, 200, 200, 429, 200, 429]);
  });

  it('lets a new window through once the old one has passed, and has no limit by default', async () => {
    const s = await start({ rateLimit: { requests: 1, window: 200 } });
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(429);
    // Polar's catch-all rule covers /v1 paths only.
    expect((await fetch(`${s.url}/healthz`)).status).toBe(404);
    await sleep(250);
    expect((await fetch(`${s.url}/v1/events/`)).status).toBe(200);

    const open = await start();
    const statuses = await Promise.all(Array.from({ length: 40 }, () => fetch(`${open.url}/v1/events/`).then((r) => r.status)));
    expect(statuses.every((st) => st === 200)).toBe(true);
  });
});

describe('listing lag', () => {
  it('lists an accepted event only after listingLag, by list and by id', async () => {
    const s = await start({ listingLag: 300 });
    expect((await ingest(s, [{ name: 'late', external_customer_id: 'u' }])).status).toBe(200);
    const id = s.events[0]!.id;
    expect((await list(s)).items).toEqual([]);
    expect((await list(s)).pagination.total_count).toBe(0);
    expect((await fetch(`${s.url}/v1/events/${id}`)).status).toBe(404);
    await sleep(350);
    expect((await list(s)).items.map((e: any) => e.id)).toEqual([id]);
    expect((await fetch(`${s.url}/v1/events/${id}`)).status).toBe(200);
  });

  it('hides a child, whatever its own lag, while its parent is not listed yet', async () => {
    const s = await start({ listingLag: 400 });
    await ingest(s, [{ name: 'parent', external_customer_id: 'u', external_id: 'p' }]);
    s.setListingLag(0);
    await ingest(s, [{ name: 'child', external_customer_id: 'u', external_id: 'c', parent_id: 'p' }]);
    await ingest(s, [{ name: 'other', external_customer_id: 'u' }]);
    expect((await list(s)).items.map((e: any) => e.name)).toEqual(['other']);
    await sleep(450);
    expect((await list(s)).items.map((e: any) => e.name).sort()).toEqual(['child', 'other', 'parent']);
  });
});

describe('orphan children', () => {
  it("with orphans: 'rejected' refuses an unknown parent_id, as Polar did before April 2026", async () => {
    const s = await start({ orphans: 'rejected' });
    const r = await ingest(s, [{ name: 'child', external_customer_id: 'u', parent_id: 'nope' }]);
    expect(r.status).toBe(422);
    expect(r.body.detail).toEqual([{ type: 'parent_not_found', loc: ['body', 'events', 0, 'parent_id'], msg: 'Parent event not found.', input: 'nope' }]);
  });

  it('by default (the newest server) stores the child, hides it until its parent arrives, then links it', async () => {
    const s = await start();
    const r = await ingest(s, [{ name: 'child', external_customer_id: 'u', external_id: 'c', parent_id: 'p' }]);
    expect(r.body).toEqual({ inserted: 1, duplicates: 0 });
    expect((await list(s)).items).toEqual([]);
    await ingest(s, [
      { name: 'grandchild', external_customer_id: 'u', parent_id: 'c' },
      { name: 'parent', external_customer_id: 'u', external_id: 'p' },
    ]);
    const items = (await list(s)).items;
    const byName = Object.fromEntries(items.map((e: any) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual(['child', 'grandchild', 'parent']);
    expect(byName.child.parent_id).toBe(byName.parent.id);
    expect(byName.grandchild.parent_id).toBe(byName.child.id);
    expect(byName.parent.child_count).toBe(1);
  });

  it("with orphans: 'hidden' links a child to a parent sent later by its Polar id", async () => {
    const s = await start({ orphans: 'hidden' });
    const [seeded] = s.addEvents([{ name: 'unrelated', external_customer_id: 'u' }]);
    const futureId = '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f';
    await ingest(s, [{ name: 'child', external_customer_id: 'u', parent_id: futureId }]);
    expect((await list(s)).items.map((e: any) => e.id)).toEqual([seeded!.id]);
    s.addEvents([{ id: futureId, name: 'parent', external_customer_id: 'u' }]);
    expect((await list(s)).items.find((e: any) => e.name === 'child').parent_id).toBe(futureId);
  });
});
