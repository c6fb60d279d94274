import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { meterBalance, type MeterBalance } from '../../src/meters/balance.js';
import { watchMeterBalance } from '../../src/meters/live.js';
import { customerPortalTransport } from '../../src/meters/portal.js';
import type { MockPolarServer } from '../../src/mock-server/index.js';
import { useRig } from '../mirror/support.js';

const rig = useRig();
const USER = { externalCustomerId: 'user_42' };
const TOKENS = {
  id: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  name: 'AI tokens',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'llm' }] },
  aggregation: { func: 'sum', property: 'tokens' },
};
const llm = (tokens: number) => ({ name: 'llm', ...USER, metadata: { tokens } });

async function sessionToken(polar: MockPolarServer): Promise<string> {
  const res = await fetch(`${polar.url}/v1/customer-sessions/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ external_customer_id: 'user_42' }),
  });
  return ((await res.json()) as { token: string }).token;
}

async function setup(credit = 1000) {
  const r = await rig();
  r.polar.addMeter(TOKENS);
  r.polar.credit('user_42', TOKENS.id, credit);
  const token = await sessionToken(r.polar);
  const portal = customerPortalTransport({ baseUrl: r.polar.url, token: () => token, meters: r.polar.meters });
  return { ...r, token, portal };
}

const portalRequests = (polar: MockPolarServer) => polar.requests.filter((q) => q.kind === 'portal-meters');

describe('meterBalance', () => {
  it('lowers the balance by the unsent events, and counts them once after they reach the server', async () => {
    const { polar, buffer, mirror, portal, token } = await setup();
    await buffer.trackMany([llm(100), llm(20), { name: 'other', ...USER, metadata: { tokens: 7 } }]);
    expect(await meterBalance(mirror, portal, TOKENS.id, USER)).toEqual({ credited: 1000, consumed: 120, balance: 880, localUnsent: 120 });
    const [request] = portalRequests(polar);
    expect(request!.headers.authorization).toBe(`Bearer ${token}`);
    expect(request!.query).toMatchObject({ meter_id: TOKENS.id, page: '1' });

    await buffer.flush();
    // The server counts them now; sent events no longer lower the balance a second time.
    expect(await meterBalance(mirror, portal, TOKENS.id, USER)).toEqual({ credited: 1000, consumed: 120, balance: 880, localUnsent: 0 });
    await buffer.track(llm(5));
    expect(await meterBalance(mirror, portal, TOKENS, USER)).toEqual({ credited: 1000, consumed: 125, balance: 875, localUnsent: 5 });
  });

  it('reads every page of the customer meters', async () => {
    const { polar, token } = await setup();
    for (let i = 0; i < 101; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      polar.addMeter({ ...TOKENS, id, name: `meter ${String(i).padStart(3, '0')}` });
      polar.credit('user_42', id, i + 1);
    }
    const portal = customerPortalTransport({ baseUrl: `${polar.url}/`, token: async () => token });
    const meters = await portal.meters();
    expect(meters).toHaveLength(102);
    expect(new Set(meters.map((m) => m.meterId)).size).toBe(102);
    expect(portalRequests(polar).map((q) => q.query['page'])).toEqual(['1', '2']);
    expect(meters.find((m) => m.meterId === TOKENS.id)).toMatchObject({ creditedUnits: 1000, consumedUnits: 0, balance: 1000, meter: { name: 'AI tokens' } });
  });

  it('fails with TransportError carrying the status: a bad token, and no answer at all', async () => {
    const { polar, buffer, mirror } = await setup();
    const bad = customerPortalTransport({ baseUrl: polar.url, token: () => 'polar_cst_nope', meters: [TOKENS] });
    const refused = await meterBalance(mirror, bad, TOKENS.id, USER).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TransportError);
    expect(refused).toMatchObject({ status: 401, code: 'transport' });
    expect((refused as Error).message).toContain('/v1/customer-portal/meters/');
    polar.setOnline(false);
    const offline = await meterBalance(mirror, customerPortalTransport({ baseUrl: polar.url, token: () => 't', meters: [TOKENS] }), TOKENS.id, USER).catch(
      (e: unknown) => e,
    );
    expect(offline).toMatchObject({ status: 0, code: 'transport' });
    await buffer.close();
  });

  it('refuses what it cannot compute: an unknown meter, a meter other than count or sum, no customer', async () => {
    const { mirror, portal } = await setup();
    await expect(meterBalance(mirror, portal, 'f0000000-0000-4000-8000-000000000000', USER)).rejects.toThrow(/customerPortalTransport\(\{ meters \}\)/);
    await expect(meterBalance(mirror, portal, { ...TOKENS, aggregation: { func: 'max', property: 'tokens' } }, USER)).rejects.toMatchObject({
      path: 'aggregation.func',
    });
    await expect(meterBalance(mirror, portal, TOKENS.id, {})).rejects.toThrow(TypeError);
  });
});

function heard(values: MeterBalance[], count: number): Promise<MeterBalance> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (values.length >= count) resolve(values[count - 1]!);
      else if (Date.now() - started > 5000) reject(new Error(`only ${values.length} values heard: ${JSON.stringify(values)}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describe('watchMeterBalance', () => {
  it('drops with each track without asking the portal, asks it again after a flush, and keeps going offline', async () => {
    const { polar, buffer, mirror, portal } = await setup();
    const values: MeterBalance[] = [];
    const errors: unknown[] = [];
    watchMeterBalance(mirror, portal, TOKENS.id, { ...USER, onError: (e) => errors.push(e) }, (b) => values.push(b));
    expect(await heard(values, 1)).toEqual({ credited: 1000, consumed: 0, balance: 1000, localUnsent: 0 });
    expect(portalRequests(polar)).toHaveLength(1);

    await buffer.track(llm(100));
    expect(await heard(values, 2)).toEqual({ credited: 1000, consumed: 100, balance: 900, localUnsent: 100 });
    expect(portalRequests(polar)).toHaveLength(1);

    await buffer.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(portalRequests(polar)).toHaveLength(2);
    expect(values.at(-1)).toEqual({ credited: 1000, consumed: 100, balance: 900, localUnsent: 0 });

    polar.setOnline(false);
    await buffer.track(llm(50));
    expect(await heard(values, values.length + 1)).toEqual({ credited: 1000, consumed: 150, balance: 850, localUnsent: 50 });
    await buffer.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    await buffer.track(llm(25));
    await new Promise((r) => setTimeout(r, 50));
    expect(values.at(-1)).toEqual({ credited: 1000, consumed: 175, balance: 825, localUnsent: 75 });
  });
});
