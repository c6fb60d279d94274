import { IDBIndex } from 'fake-indexeddb';
import { describe, expect, it, vi } from 'vitest';
import { TransportError } from '../../src/errors.js';
import { meterBalance, type MeterBalance } from '../../src/meters/balance.js';
import { watchMeterBalance } from '../../src/meters/live.js';
import { customerPortalTransport, type CustomerMeter } from '../../src/meters/portal.js';
import type { MockPolarOptions, MockPolarServer } from '../../src/mock-server/index.js';
import { MovableClock, useRig } from '../mirror/support.js';

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
  // The portal counts at once (a mock that imitates Polar's meter lag recomputes on every read).
  const r = await rig({}, { meterLag: 0 } as MockPolarOptions);
  r.polar.addMeter(TOKENS);
  r.polar.credit('user_42', TOKENS.id, credit);
  const token = await sessionToken(r.polar);
  const portal = customerPortalTransport({ baseUrl: r.polar.url, token: () => token, meters: r.polar.meters });
  return { ...r, token, portal };
}

const portalRequests = (polar: MockPolarServer) => polar.requests.filter((q) => q.kind === 'portal-meters');

describe('meterBalance', () => {
  it('lowers the balance by the events Polar may not count yet, and asks the portal with the session token', async () => {
    const { polar, buffer, mirror, portal, token } = await setup();
    await buffer.trackMany([llm(100), llm(20), { name: 'other', ...USER, metadata: { tokens: 7 } }]);
    expect(await meterBalance(mirror, portal, TOKENS.id, USER)).toEqual({ credited: 1000, consumed: 120, balance: 880, uncounted: 120 });
    const [request] = portalRequests(polar);
    expect(request!.headers.authorization).toBe(`Bearer ${token}`);
    expect(request!.query).toMatchObject({ meter_id: TOKENS.id, page: '1' });

    await buffer.flush();
    // The mock's meter counts them at once, but nothing in its answer proves it (its meter was not
    // recomputed after their ingest): they keep lowering the balance, which errs low, never high.
    expect(portalMeter(await portal.meters({ meterId: TOKENS.id }))).toMatchObject({ consumedUnits: 120 });
    expect(await meterBalance(mirror, portal, TOKENS.id, USER)).toEqual({ credited: 1000, consumed: 240, balance: 760, uncounted: 120 });
    await buffer.track(llm(5));
    expect(await meterBalance(mirror, portal, TOKENS, USER)).toEqual({ credited: 1000, consumed: 245, balance: 755, uncounted: 125 });
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

const portalMeter = (meters: CustomerMeter[]) => meters.find((m) => m.meterId === TOKENS.id);

/**
 * A portal whose one meter the test sets: Polar's meter lags its listing (a delayed job), which
 * the mock does not imitate. Served through customerPortalTransport, so its parsing is the real one.
 */
function laggingPortal(credited = 1000) {
  const created = new Date(Date.now() - 86_400_000).toISOString();
  const meter = { consumed: 0, modifiedAt: null as number | null };
  let asked = 0;
  const fetch = async () => {
    asked++;
    const item = {
      id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
      created_at: created,
      modified_at: meter.modifiedAt === null ? null : new Date(meter.modifiedAt).toISOString(),
      customer_id: '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f',
      meter_id: TOKENS.id,
      consumed_units: meter.consumed,
      credited_units: credited,
      balance: credited - meter.consumed,
      meter: { id: TOKENS.id, name: TOKENS.name },
    };
    return new Response(JSON.stringify({ items: [item], pagination: { total_count: 1, max_page: 1 } }), { headers: { 'content-type': 'application/json' } });
  };
  const portal = customerPortalTransport({ baseUrl: 'http://127.0.0.1:9', token: () => 'polar_cst_test', meters: [TOKENS], fetch });
  return { portal, meter, asked: () => asked };
}

describe('the balance never rises because an event moved on', () => {
  it("keeps one value from track to confirmed while Polar's meter lags, and the same once its recompute counts them", async () => {
    const clock = new MovableClock();
    const { polar, buffer, mirror } = await rig({ clock });
    const { portal, meter } = laggingPortal();
    const balance = () => meterBalance(mirror, portal, TOKENS.id, USER);
    const walk: MeterBalance[] = [];

    await buffer.trackMany([llm(100), llm(20), llm(5)]);
    walk.push(await balance()); // pending
    polar.setLatency(200);
    const flushing = buffer.flush();
    await vi.waitFor(async () => expect(await buffer.stats()).toMatchObject({ sending: 3 }), { timeout: 10_000 });
    walk.push(await balance()); // sending
    await flushing;
    polar.setLatency(0);
    expect(await buffer.stats()).toMatchObject({ sent: 3 });
    walk.push(await balance()); // sent, Polar's meter not recomputed yet
    await mirror.reconcile(USER);
    expect(await buffer.stats()).toMatchObject({ confirmed: 3 });
    walk.push(await balance()); // confirmed, Polar's meter still not recomputed
    // Polar's meter recomputed, but before the events' ingest (a job already running): still counted.
    meter.consumed = 40; // another device's events
    meter.modifiedAt = clock.now() - 1000;
    walk.push(await balance());
    expect(walk.map((b) => b.balance)).toEqual([875, 875, 875, 875, 835]);
    expect(walk.map((b) => b.uncounted)).toEqual([125, 125, 125, 125, 125]);

    // 20 s on, Polar's job has counted them: the portal's consumed units take over, no jump.
    clock.offset += 20_000;
    meter.consumed = 165;
    meter.modifiedAt = clock.now() - 2000;
    expect(await balance()).toEqual({ credited: 1000, consumed: 165, balance: 835, uncounted: 0 });
  });

  it('holds under one portal answer in a watch: each value heard is at most the one before', async () => {
    const { buffer, mirror } = await rig();
    const { portal, asked } = laggingPortal();
    const values: MeterBalance[] = [];
    watchMeterBalance(mirror, portal, TOKENS.id, USER, (b) => values.push(b));
    await vi.waitFor(() => expect(values).toHaveLength(1), { timeout: 10_000 });
    for (const tokens of [1, 10, 100]) {
      await buffer.track(llm(tokens));
      await buffer.flush();
    }
    await mirror.reconcile(USER);
    await buffer.track(llm(1000));
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ credited: 1000, consumed: 1111, balance: -111, uncounted: 1111 }), { timeout: 10_000 });
    expect(asked()).toBeGreaterThan(1); // each flush and the reconcile asked the portal again
    const balances = values.map((v) => v.balance);
    expect(balances).toEqual([...balances].sort((a, b) => b - a));
  });
});

describe('watchMeterBalance', () => {
  it("reads the customer's confirmed history only when it may have changed: a confirmation, a clear()", async () => {
    const { buffer, mirror } = await rig();
    const { portal } = laggingPortal();
    const scans: string[] = [];
    const original = IDBIndex.prototype.getAll;
    IDBIndex.prototype.getAll = function (this: IDBIndex, ...args: unknown[]) {
      if (this.objectStore.name === 'events' && this.name === 'byCustomer') scans.push('byCustomer');
      return (original as (...a: unknown[]) => IDBRequest).apply(this, args);
    } as typeof original;
    try {
      const values: MeterBalance[] = [];
      watchMeterBalance(mirror, portal, TOKENS.id, USER, (b) => values.push(b));
      await vi.waitFor(() => expect(values).toHaveLength(1), { timeout: 10_000 });
      for (const tokens of [1, 10]) {
        await buffer.track(llm(tokens));
        await buffer.flush();
      }
      await vi.waitFor(() => expect(values.at(-1)).toMatchObject({ uncounted: 11 }), { timeout: 10_000 });
      expect(scans).toHaveLength(1); // tracks and flushes read only the events not confirmed
      await mirror.reconcile(USER);
      await buffer.track(llm(100));
      await vi.waitFor(() => expect(values.at(-1)).toMatchObject({ uncounted: 111 }), { timeout: 10_000 });
      expect(await buffer.stats()).toMatchObject({ confirmed: 2, pending: 1 });
      const afterConfirming = scans.length;
      expect(afterConfirming).toBeGreaterThan(1); // two left the events not confirmed
      await buffer.clear();
      await vi.waitFor(() => expect(values.at(-1)).toMatchObject({ uncounted: 0 }), { timeout: 10_000 });
      expect(scans.length).toBeGreaterThan(afterConfirming);
    } finally {
      IDBIndex.prototype.getAll = original;
    }
  });

  it('drops with each track without asking the portal, asks it again after a flush, and keeps going offline', async () => {
    const { polar, buffer, mirror, portal } = await setup();
    const values: MeterBalance[] = [];
    const errors: unknown[] = [];
    watchMeterBalance(mirror, portal, TOKENS.id, { ...USER, onError: (e) => errors.push(e) }, (b) => values.push(b));
    await vi.waitFor(() => expect(values).toEqual([{ credited: 1000, consumed: 0, balance: 1000, uncounted: 0 }]), { timeout: 10_000 });
    expect(portalRequests(polar)).toHaveLength(1);

    await buffer.track(llm(100));
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ credited: 1000, consumed: 100, balance: 900, uncounted: 100 }), { timeout: 10_000 });
    expect(portalRequests(polar)).toHaveLength(1);

    await buffer.flush();
    // The flush's change asks the portal again; its meter counts the event, its answer cannot prove it.
    await vi.waitFor(() => expect(portalRequests(polar)).toHaveLength(2), { timeout: 10_000 });
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ credited: 1000, consumed: 200, balance: 800, uncounted: 100 }), { timeout: 10_000 });

    polar.setOnline(false);
    await buffer.track(llm(50));
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ credited: 1000, consumed: 250, balance: 750, uncounted: 150 }), { timeout: 10_000 });
    const failed = new Promise((resolve) => buffer.on('flush', resolve));
    await buffer.flush().catch(() => undefined);
    await failed;
    // The portal cannot be reached: its failure is heard, the last answer stays in use.
    await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 10_000 });
    await buffer.track(llm(25));
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ credited: 1000, consumed: 275, balance: 725, uncounted: 175 }), { timeout: 10_000 });
  });
});
