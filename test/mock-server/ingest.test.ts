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

const CUSTOMER = '5b0f3c2e-8a7d-4e1f-9b6c-2d4a8e0f1c3b';

describe('mock Polar ingest', () => {
  it('stores new events and answers how many were inserted', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'api.call', external_customer_id: 'u1', external_id: 'a' },
      { name: 'api.call', external_customer_id: 'u1', external_id: 'b', metadata: { tokens: 3 } },
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ inserted: 2, duplicates: 0 });
    expect(s.events).toHaveLength(2);
    expect(s.storedExternalIds()).toEqual(['a', 'b']);
  });

  it('counts an already stored external_id as a duplicate and does not store it again', async () => {
    const s = await start();
    await ingest(s, [{ name: 'x', external_customer_id: 'u1', external_id: 'a' }]);
    const r = await ingest(s, [
      { name: 'x', external_customer_id: 'u1', external_id: 'a' },
      { name: 'x', external_customer_id: 'u1', external_id: 'c' },
    ]);
    expect(r.body).toEqual({ inserted: 1, duplicates: 1 });
    expect(s.countByExternalId()).toEqual(
      new Map([
        ['a', 1],
        ['c', 1],
      ]),
    );
  });

  it('counts a repeated external_id within the same batch as a duplicate', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'x', external_customer_id: 'u1', external_id: 'same' },
      { name: 'x', external_customer_id: 'u1', external_id: 'same' },
    ]);
    expect(r.body).toEqual({ inserted: 1, duplicates: 1 });
    expect(s.events).toHaveLength(1);
  });

  it('never deduplicates events that have no external_id', async () => {
    const s = await start();
    const e = { name: 'x', external_customer_id: 'u1' };
    expect((await ingest(s, [e, e])).body).toEqual({ inserted: 2, duplicates: 0 });
  });

  it('rejects the whole batch with 422 naming every bad event by index and stores nothing', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'ok', external_customer_id: 'u1', external_id: 'good' },
      { name: 'bad', external_customer_id: 'u1', metadata: { note: '' } },
      { name: 'ok', external_customer_id: 'u1' },
      { name: 'bad', external_customer_id: 'u1', metadata: { note: 'x'.repeat(501), nested: { a: 1 } } },
      { name: 'no customer' },
    ]);
    expect(r.status).toBe(422);
    const locs = r.body.detail.map((d: any) => d.loc);
    expect(new Set(locs.map((l: any[]) => l[2]))).toEqual(new Set([1, 3, 4]));
    expect(locs).toContainEqual(['body', 'events', 1, 'EventCreateExternalCustomer', 'metadata', 'note', 'constrained-str']);
    expect(locs).toContainEqual(['body', 'events', 3, 'EventCreateExternalCustomer', 'metadata', 'note', 'constrained-str']);
    expect(locs).toContainEqual(['body', 'events', 3, 'EventCreateExternalCustomer', 'metadata', 'nested', 'bool']);
    expect(r.body.error).toBe('RequestValidationError');
    expect(locs).toContainEqual(['body', 'events', 4, 'EventCreateCustomer', 'customer_id']);
    expect(locs).toContainEqual(['body', 'events', 4, 'EventCreateExternalCustomer', 'external_customer_id']);
    for (const d of r.body.detail) {
      expect(d).toHaveProperty('type');
      expect(d).toHaveProperty('msg');
      expect(d).toHaveProperty('input');
    }
    expect(s.events).toHaveLength(0);
  });

  it('reports errors in event index order', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'x'.repeat(129), external_customer_id: 'u1' },
      { name: 'ok', external_customer_id: 'u1' },
      { name: 'x', external_customer_id: 7 },
    ]);
    const indexes = r.body.detail.map((d: any) => d.loc[2]);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(indexes[0]).toBe(0);
  });

  it('rejects null and list metadata values, four errors each, one per member of the value union', async () => {
    const s = await start();
    const r = await ingest(s, [{ name: 'x', external_customer_id: 'u', metadata: { b: null, c: [1] } }]);
    expect(r.status).toBe(422);
    const fields = r.body.detail.filter((d: any) => d.loc[3] === 'EventCreateExternalCustomer').map((d: any) => d.loc.slice(4).join('.'));
    expect(fields.sort()).toEqual([
      'metadata.b.bool',
      'metadata.b.constrained-str',
      'metadata.b.float',
      'metadata.b.int',
      'metadata.c.bool',
      'metadata.c.constrained-str',
      'metadata.c.float',
      'metadata.c.int',
    ]);
  });

  it('accepts string, integer, float and boolean metadata and well-formed _cost and _llm', async () => {
    const s = await start();
    const r = await ingest(s, [
      {
        name: 'llm',
        external_customer_id: 'u',
        metadata: {
          s: 'x'.repeat(500),
          i: 3,
          f: 1.5,
          b: false,
          _cost: { amount: 150, currency: 'usd' },
          _llm: { vendor: 'openai', model: 'gpt', input_tokens: 1, output_tokens: 2, total_tokens: 3 },
        },
      },
    ]);
    expect(r.status).toBe(200);
  });

  it('rejects a _cost in another currency and an _llm without token counts', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'x', external_customer_id: 'u', metadata: { _cost: { amount: 1, currency: 'eur' } } },
      { name: 'x', external_customer_id: 'u', metadata: { _llm: { vendor: 'v', model: 'm' } } },
    ]);
    expect(r.status).toBe(422);
    const locs = r.body.detail.filter((d: any) => d.loc[3] === 'EventCreateExternalCustomer').map((d: any) => d.loc.slice(2));
    expect(locs).toContainEqual([0, 'EventCreateExternalCustomer', 'metadata', '_cost', 'currency']);
    expect(locs).toContainEqual([1, 'EventCreateExternalCustomer', 'metadata', '_llm', 'input_tokens']);
  });

  it('keeps customer_id and drops external_customer_id when an event carries both', async () => {
    const s = await start({ customers: [{ id: CUSTOMER }] });
    const r = await ingest(s, [{ name: 'x', customer_id: CUSTOMER, external_customer_id: 'u1' }]);
    expect(r.status).toBe(200);
    expect(s.events[0]!.customer_id).toBe(CUSTOMER);
    expect(s.events[0]!.external_customer_id).toBeNull();
  });

  it('accepts an event with an invalid customer_id when its external_customer_id is valid, like a pydantic union', async () => {
    const s = await start();
    const r = await ingest(s, [{ name: 'x', customer_id: 'not-a-uuid', external_customer_id: 'u1' }]);
    expect(r.status).toBe(200);
    expect(s.events[0]!.external_customer_id).toBe('u1');
  });

  it('rejects a timestamp in the future of the server clock', async () => {
    const s = await start();
    const r = await ingest(s, [{ name: 'x', external_customer_id: 'u', timestamp: new Date(Date.now() + 60_000).toISOString() }]);
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'events', 0, 'EventCreateCustomer', 'customer_id']);
    const ts = r.body.detail.find((d: any) => d.loc.at(-1) === 'timestamp');
    expect(ts.msg).toMatch(/Timestamp must be in the past/);
  });

  it('judges future timestamps by the server clock including clockOffsetMs', async () => {
    const s = await start({ clockOffsetMs: -120_000 });
    const oneMinuteAgo = new Date(Date.now() - 60_000).toISOString();
    expect((await ingest(s, [{ name: 'x', external_customer_id: 'u', timestamp: oneMinuteAgo }])).status).toBe(422);
    s.setClockOffset(0);
    expect((await ingest(s, [{ name: 'x', external_customer_id: 'u', timestamp: oneMinuteAgo }])).status).toBe(200);
  });

  it('rejects a timestamp without a timezone offset', async () => {
    const s = await start();
    const r = await ingest(s, [{ name: 'x', external_customer_id: 'u', timestamp: '2024-01-01T10:00:00' }]);
    expect(r.status).toBe(422);
    expect(r.body.detail.some((d: any) => d.type === 'timezone_aware')).toBe(true);
  });

  it('stamps events sent without a timestamp with the server clock', async () => {
    const s = await start({ clockOffsetMs: -3_600_000 });
    await ingest(s, [{ name: 'x', external_customer_id: 'u' }]);
    const stored = Date.parse(s.events[0]!.timestamp);
    expect(Math.abs(stored - (Date.now() - 3_600_000))).toBeLessThan(5_000);
  });

  it('refuses a name longer than 128 characters with 422 string_too_long under both members, storing nothing', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'ok', external_customer_id: 'u' },
      { name: 'n'.repeat(129), external_customer_id: 'u' },
    ]);
    expect(r.status).toBe(422);
    expect(r.body.detail).toContainEqual({
      type: 'string_too_long',
      loc: ['body', 'events', 1, 'EventCreateExternalCustomer', 'name'],
      msg: 'String should have at most 128 characters',
      input: 'n'.repeat(129),
      ctx: { max_length: 128 },
    });
    expect(s.events).toHaveLength(0);
  });

  it('accepts a name of exactly 128 characters', async () => {
    const s = await start();
    expect((await ingest(s, [{ name: 'n'.repeat(128), external_customer_id: 'u' }])).status).toBe(200);
  });

  it('resolves parent_id to an event stored by an earlier batch, by external_id or by server id', async () => {
    const s = await start();
    await ingest(s, [{ name: 'root', external_customer_id: 'u', external_id: 'root' }]);
    const rootId = s.events[0]!.id;
    const r = await ingest(s, [
      { name: 'child', external_customer_id: 'u', parent_id: 'root' },
      { name: 'child', external_customer_id: 'u', parent_id: rootId },
    ]);
    expect(r.status).toBe(200);
    expect(s.events[1]!.parent_id).toBe(rootId);
    expect(s.events[2]!.parent_id).toBe(rootId);
    expect(s.events[0]!.child_count).toBe(2);
  });

  it('resolves parent_id to an earlier event of the same batch', async () => {
    const s = await start();
    const r = await ingest(s, [
      { name: 'root', external_customer_id: 'u', external_id: 'p' },
      { name: 'child', external_customer_id: 'u', external_id: 'c', parent_id: 'p' },
    ]);
    expect(r.status).toBe(200);
    expect(s.events[1]!.parent_id).toBe(s.events[0]!.id);
  });

  it("with orphans: 'rejected' refuses a parent_id that names no stored or earlier event with 422 at the child index", async () => {
    const s = await start({ orphans: 'rejected' });
    const r = await ingest(s, [
      { name: 'child', external_customer_id: 'u', parent_id: 'later' },
      { name: 'root', external_customer_id: 'u', external_id: 'later' },
    ]);
    expect(r.status).toBe(422);
    expect(r.body.detail).toHaveLength(1);
    expect(r.body.detail[0].loc).toEqual(['body', 'events', 0, 'parent_id']);
    expect(s.events).toHaveLength(0);
  });

  it('fills the stored event like Polar does: customer_id stays null, the customer is resolved by external id', async () => {
    const s = await start({
      organizationId: '11111111-2222-4333-8444-555555555555',
      customers: [{ id: CUSTOMER, external_id: 'u1', email: 'a@b.c' }],
    });
    await ingest(s, [{ name: 'api.call', external_customer_id: 'u1', metadata: { k: 'v' } }]);
    const e = s.events[0]!;
    expect(e).toMatchObject({
      organization_id: '11111111-2222-4333-8444-555555555555',
      customer_id: null,
      external_customer_id: 'u1',
      name: 'api.call',
      label: 'api.call',
      source: 'user',
      metadata: { k: 'v' },
      parent_id: null,
      child_count: 0,
      member_id: null,
      external_member_id: null,
    });
    expect(e.customer).toMatchObject({ id: CUSTOMER, external_id: 'u1', email: 'a@b.c' });
    expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(e).not.toHaveProperty('external_id');
  });

  it('leaves customer_id and customer null for an unknown external customer', async () => {
    const s = await start();
    await ingest(s, [{ name: 'x', external_customer_id: 'stranger' }]);
    expect(s.events[0]).toMatchObject({ customer_id: null, customer: null, external_customer_id: 'stranger' });
  });

  it('requires the bearer token when one is configured', async () => {
    const s = await start({ token: 'secret' });
    const none = await ingest(s, [{ name: 'x', external_customer_id: 'u' }]);
    expect(none.status).toBe(401);
    expect(typeof none.body.detail).toBe('string');
    const wrong = await ingest(s, [{ name: 'x', external_customer_id: 'u' }], { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    const right = await ingest(s, [{ name: 'x', external_customer_id: 'u' }], { authorization: 'Bearer secret' });
    expect(right.status).toBe(200);
    expect(s.events).toHaveLength(1);
  });

  it('answers 413 to a body larger than maxBodyBytes and stores nothing', async () => {
    const s = await start({ maxBodyBytes: 1000 });
    const r = await ingest(s, [
      { name: 'x', external_customer_id: 'u', metadata: { big: 'x'.repeat(400), more: 'y'.repeat(400) } },
      { name: 'y', external_customer_id: 'u', metadata: { z: 'z'.repeat(300) } },
    ]);
    expect(r.status).toBe(413);
    expect(s.events).toHaveLength(0);
  });

  it('answers 422 with loc ["body", position] to malformed JSON', async () => {
    const s = await start();
    const res = await fetch(`${s.url}/v1/events/ingest`, { method: 'POST', body: '{"events": [', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(422);
    const body = (await res.json()) as any;
    expect(body.detail[0].loc[0]).toBe('body');
    expect(typeof body.detail[0].loc[1]).toBe('number');
    expect(body.detail[0].type).toBe('json_invalid');
  });

  it('answers 422 when the body has no events list', async () => {
    const s = await start();
    const res = await fetch(`${s.url}/v1/events/ingest`, { method: 'POST', body: '{"evts": []}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(422);
    expect(((await res.json()) as any).detail[0].loc).toEqual(['body', 'events']);
  });

  it('answers 404 JSON to unknown routes and 405 to a wrong method', async () => {
    const s = await start();
    const notFound = await fetch(`${s.url}/v1/nothing`);
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual({ detail: 'Not Found' });
    const wrong = await fetch(`${s.url}/v1/events/ingest`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });

  it('records every request with its parsed body and answered status', async () => {
    const s = await start();
    await ingest(s, [{ name: 'x', external_customer_id: 'u' }], { 'x-test': '1' });
    const [req] = s.ingestRequests();
    expect(req).toMatchObject({ method: 'POST', path: '/v1/events/ingest', status: 200, kind: 'ingest' });
    expect(req!.headers['x-test']).toBe('1');
    expect(req!.body).toEqual({ events: [{ name: 'x', external_customer_id: 'u' }] });
    expect(req!.result).toEqual({ inserted: 1, duplicates: 0 });
    expect(req!.at).toBeInstanceOf(Date);
  });

  it('forgets events, requests and faults on reset', async () => {
    const s = await start();
    await ingest(s, [{ name: 'x', external_customer_id: 'u', external_id: 'a' }]);
    s.addFaults({ status: 500 });
    s.reset();
    expect(s.events).toHaveLength(0);
    expect(s.requests).toHaveLength(0);
    expect(s.pendingFaults).toHaveLength(0);
    expect((await ingest(s, [{ name: 'x', external_customer_id: 'u', external_id: 'a' }])).body).toEqual({ inserted: 1, duplicates: 0 });
  });

  it('keeps a known external_id unique when seeded events use it', async () => {
    const s = await start();
    s.addEvents([{ name: 'seeded', external_customer_id: 'u', external_id: 'k' }]);
    expect((await ingest(s, [{ name: 'x', external_customer_id: 'u', external_id: 'k' }])).body).toEqual({ inserted: 0, duplicates: 1 });
    expect(s.countByExternalId().get('k')).toBe(1);
  });
});
