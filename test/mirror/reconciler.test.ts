import { describe, expect, it } from 'vitest';
import { EventValidationError, TransportError } from '../../src/errors.js';
import type { Transport } from '../../src/transport/transport.js';
import type { ReconcileReport } from '../../src/mirror/types.js';
import { MALFORMED_ITEMS, systemEventItem, userEventItem } from '../fixtures/events-list/polar-wire.js';
import { MovableClock, seed, useRig } from './support.js';

const rig = useRig();
/** An hour ago, on a whole second (well inside the default retention). */
const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
/** A wire timestamp with microseconds that many events share (T0 + 1.123456 s). */
const SHARED = `${new Date(T0 + 1123).toISOString().slice(0, 23)}456+00:00`;

function sum(reports: ReconcileReport[], key: keyof ReconcileReport): number {
  return reports.reduce((n, r) => n + r[key], 0);
}

describe('reconcile() paging', () => {
  it('mirrors every event once when pages split a run of equal timestamps listed in a new order each time', async () => {
    // Polar's list keeps milliseconds and orders events of one millisecond differently on each request.
    const { polar, buffer, mirror } = await rig();
    const ids = [...seed(polar, 30, (i) => T0 + i), ...seed(polar, 150, () => SHARED), ...seed(polar, 40, (i) => T0 + 5000 + i)];
    const report = await mirror.reconcile();
    expect(report).toMatchObject({ added: 220, updated: 0 });
    const merged = await mirror.query({ limit: Infinity });
    expect(merged.map((e) => e.serverId).sort()).toEqual([...ids].sort());
    expect((await buffer.stats()).mirrored).toBe(220);
  });

  it("resumes at the cursor: adds only new events, including new ones at the cursor's own timestamp", async () => {
    // No look-back window here (listing-lag.test.ts covers it): the cursor alone.
    const { polar, mirror } = await rig({ lookBack: 0 });
    seed(polar, 199, (i) => T0 + i);
    seed(polar, 1, () => SHARED);
    await mirror.reconcile();
    const more = [...seed(polar, 4, () => SHARED), ...seed(polar, 2, (i) => T0 + 9000 + i)];
    const second = await mirror.reconcile();
    // Only the cursor's own timestamp is read again (1 known + 4 new), never the history.
    expect(second).toMatchObject({ fetched: 7, added: 6, unchanged: 1, pages: 1 });
    const merged = (await mirror.query({ limit: Infinity })).map((e) => e.serverId);
    expect(merged).toHaveLength(206);
    expect(new Set(merged).size).toBe(206);
    expect(merged).toEqual(expect.arrayContaining(more));
  });

  it('resumes after a reconcile cut on page 3 and ends in the same state as an uninterrupted one', async () => {
    const { polar, transport, buffer, mirror, another } = await rig();
    seed(polar, 95, (i) => T0 + i);
    seed(polar, 130, () => SHARED); // crosses the page 1/2 and 2/3 boundaries
    seed(polar, 225, (i) => T0 + 10_000 + Math.floor(i / 3)); // runs of three
    let lists = 0;
    const cutting: Transport = {
      ingest: (events, options) => transport.ingest(events, options),
      list: (query, options) => {
        lists++;
        if (lists === 3) polar.addFaults({ match: 'list', drop: true });
        return transport.list!(query, options);
      },
    };
    const { buffer: interruptedBuffer, mirror: interrupted } = another({ transport: cutting });
    await expect(interrupted.reconcile()).rejects.toBeInstanceOf(TransportError);
    // Two pages applied: the first, and one of the crowded millisecond (it shares a few with the first).
    const cut = (await interruptedBuffer.stats()).mirrored;
    expect(cut).toBeGreaterThanOrEqual(100);
    expect(cut).toBeLessThanOrEqual(200);
    const resumed = await interrupted.reconcile();
    expect(resumed.added).toBe(450 - cut);

    const whole = await mirror.reconcile();
    expect(whole.added).toBe(450);
    const a = await interrupted.query({ limit: Infinity });
    const b = await mirror.query({ limit: Infinity });
    expect(a.map((e) => [e.serverId, e.status, e.timestamp.getTime()])).toEqual(b.map((e) => [e.serverId, e.status, e.timestamp.getTime()]));
    expect(await interruptedBuffer.stats()).toEqual(await buffer.stats());
  });

  it('retries a page the server failed (503 with Retry-After, a dropped connection) with the retry options, and reads every page', async () => {
    const { polar, another } = await rig();
    seed(polar, 250, (i) => T0 + i);
    const errors: unknown[] = [];
    const { mirror } = another({ retry: { retries: 3, minTimeout: 1, maxTimeout: 50, randomize: false } });
    mirror.on('error', (e) => errors.push(e));
    polar.addFaults({ match: 'list', status: 503, retryAfter: 0 }, { match: 'list', drop: true });
    const report = await mirror.reconcile();
    // Each page starts again at the last millisecond read: 100 + 100 + 52 items.
    expect(report).toMatchObject({ fetched: 252, added: 250, pages: 3 });
    expect(polar.pendingFaults).toHaveLength(0);
    // Each failed try is reported on "error", as the flush does.
    expect(errors.map((e) => (e as TransportError).status)).toEqual([503, 0]);
    // Their messages speak of the page read again, not of queued events.
    for (const e of errors) expect((e as Error).message).toMatch(/GET .*\/v1\/events\//);
  });

  it('keeps one cursor per customer', async () => {
    const { polar, mirror } = await rig();
    seed(polar, 3, (i) => T0 + i);
    seed(polar, 2, (i) => T0 + 100 + i, { external_customer_id: 'someone_else' });
    expect((await mirror.reconcile({ externalCustomerId: 'user_42' })).added).toBe(3);
    expect((await mirror.reconcile({ externalCustomerId: 'someone_else' })).added).toBe(2);
    expect((await mirror.reconcile({ externalCustomerId: 'user_42' })).added).toBe(0);
  });

  it('refuses both customer references at once', async () => {
    const { mirror } = await rig();
    await expect(mirror.reconcile({ externalCustomerId: 'a', customerId: 'b' })).rejects.toThrow(TypeError);
  });
});

describe('reconcile() items', () => {
  it('skips SystemEvents and counts them', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 2, (i) => T0 + i);
    polar.addSystemEvent({ name: 'customer.created', timestamp: T0 + 1, external_customer_id: 'user_42' });
    polar.addSystemEvent({ name: 'meter.credited', timestamp: T0 + 2 });
    const report = await mirror.reconcile();
    expect(report).toMatchObject({ fetched: 4, added: 2, system: 2 });
    expect((await buffer.stats()).mirrored).toBe(2);
  });

  it('skips a malformed server item, reports it on "error" and writes nothing of it', async () => {
    const { polar, mirror } = await rig();
    seed(polar, 1, () => T0);
    const [bad] = seed(polar, 1, () => T0 + 1, { metadata: { tags: ['a', 'b'] } });
    seed(polar, 1, () => T0 + 2);
    const errors: Error[] = [];
    mirror.on('error', (e) => errors.push(e));
    const report = await mirror.reconcile();
    expect(report).toMatchObject({ fetched: 3, added: 2, invalid: 1 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(EventValidationError);
    expect((errors[0] as EventValidationError).failures[0]?.path.slice(0, 2)).toEqual(['metadata', 'tags']);
    expect(errors[0]!.message).toContain(bad!);
    expect((await mirror.query()).map((e) => e.serverId)).not.toContain(bad);
  });

  it('applies an array of wire UserEvents, skipping malformed items and SystemEvents', async () => {
    const { another } = await rig();
    // The fixtures are from 2025: keep every age.
    const { buffer, mirror } = another({ retention: { maxAge: Infinity } });
    const errors: Error[] = [];
    mirror.on('error', (e) => errors.push(e));
    const items = [userEventItem(), systemEventItem(), ...MALFORMED_ITEMS.map((m) => m.item), userEventItem({ timestamp: '2025-06-02T14:03:08.000001+00:00' })];
    const report = await mirror.reconcile(items);
    expect(report).toMatchObject({ fetched: items.length, added: 2, system: 1, invalid: MALFORMED_ITEMS.length, pages: 0 });
    expect(errors).toHaveLength(MALFORMED_ITEMS.length);
    expect((await buffer.stats()).mirrored).toBe(2);
  });

  it('keeps customer objects with every field, and unknown extra fields, in the mirror', async () => {
    const { polar, mirror } = await rig();
    seed(polar, 1, () => SHARED, { some_new_field: { nested: true } });
    await mirror.reconcile();
    const [entry] = await mirror.query();
    const userEvent = entry!.userEvent as unknown as Record<string, unknown> & { customer: Record<string, unknown> };
    expect(userEvent['someNewField']).toEqual({ nested: true });
    expect(userEvent.customer).toMatchObject({
      externalId: 'user_42',
      createdAt: new Date('2025-01-01T00:00:00.000Z'),
      modifiedAt: new Date('2025-03-04T05:06:07.890Z'),
      billingAddress: { postalCode: '10115', country: 'DE' },
      taxId: ['DE123456789', 'eu_vat'],
      loyaltyTier: 'gold',
    });
    expect(entry!.timestamp).toEqual(new Date(T0 + 1123));
  });

  it('replaces a mirrored event by a newer copy and counts it as updated', async () => {
    const { another } = await rig();
    const { mirror } = another({ retention: { maxAge: Infinity } });
    const first = userEventItem();
    await mirror.reconcile([first]);
    const report = await mirror.reconcile([{ ...first, customer: null, label: 'renamed' }]);
    expect(report).toMatchObject({ added: 0, updated: 1 });
    const [entry] = await mirror.query();
    expect(entry!.userEvent?.customer).toBeNull();
  });

  it('emits "reconcile" with the report and "change" when something changed', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 1, () => T0);
    const seen: string[] = [];
    mirror.on('reconcile', (r) => seen.push(`reconcile:${r.added}`));
    buffer.on('change', (c) => seen.push(`buffer change:${c.reason}`));
    mirror.on('change', (c) => seen.push(`mirror change:${c.reason}`));
    await mirror.reconcile();
    expect(seen).toEqual(['reconcile:1', 'mirror change:reconcile', 'buffer change:reconcile']);
    // Nothing new: no "change".
    await mirror.reconcile();
    expect(seen).toHaveLength(4);
  });
});

describe('track → flush → reconcile', () => {
  it('confirms every tracked event, two identical ones in the same millisecond included', async () => {
    const { polar, buffer, mirror } = await rig();
    const at = new Date(Date.now() - 60_000);
    const metadata = { tokens: 12, model: 'gpt', _cost: { amount: 150, currency: 'usd' as const } };
    const tracked = [
      await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata, timestamp: at }),
      await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata, timestamp: at }),
      await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata: { b: 1, a: 2.5 }, timestamp: at }),
      await buffer.track({ name: 'upload', externalCustomerId: 'user_42' }),
    ];
    await buffer.flush();
    // The server hands the cost amount back as a decimal string ("150.0" from the newest server).
    const cost = (polar.events[0]!.metadata as { _cost: { amount: unknown } })._cost.amount;
    expect(typeof cost === 'string' && Number(cost) === 150).toBe(true);
    const report = await mirror.reconcile();
    expect(report.matched).toBe(4);
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 0, confirmed: 4, mirrored: 4 });
    const merged = await mirror.query();
    expect(merged.map((e) => e.externalId).sort()).toEqual(tracked.map((e) => e.externalId).sort());
    expect(new Set(merged.map((e) => e.serverId)).size).toBe(4);
    expect(merged.every((e) => e.status === 'confirmed' && e.userEvent?.id === e.serverId)).toBe(true);
  });

  it('confirms an event sent with an old timestamp after the cursor moved past that time', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 1, () => Date.now() - 60_000);
    await mirror.reconcile();
    await buffer.track({ name: 'offline_call', externalCustomerId: 'user_42', timestamp: new Date(Date.now() - 3_600_000) });
    await buffer.flush();
    const report = await mirror.reconcile();
    expect(report.matched).toBe(1);
    expect((await buffer.stats()).confirmed).toBe(1);
  });

  it('resends a sent event that no reconcile confirmed within the grace period', async () => {
    const clock = new MovableClock();
    const { polar, transport, another } = await rig();
    let swallow = true;
    const lossy: Transport = {
      // The first send "succeeds" without reaching the server (an answer from a broken proxy).
      ingest: async (events, options) => (swallow ? { inserted: events.length, duplicates: 0 } : transport.ingest(events, options)),
      list: (query, options) => transport.list!(query, options),
    };
    const { buffer, mirror } = another({ transport: lossy, clock, confirmGracePeriod: 600_000 });
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    await buffer.flush();
    swallow = false;
    expect((await mirror.reconcile()).resent).toBe(0);
    expect((await buffer.stats()).sent).toBe(1);
    clock.offset = 600_001;
    expect((await mirror.reconcile()).resent).toBe(1);
    expect((await buffer.stats()).pending).toBe(1);
    await buffer.flush();
    expect(polar.events).toHaveLength(1);
    expect((await mirror.reconcile()).matched).toBe(1);
    expect((await buffer.stats()).confirmed).toBe(1);
  });
});

describe('retention', () => {
  it('bounds the mirror to the newest maxEvents', async () => {
    const { polar, another } = await rig();
    const { mirror } = another({ retention: { maxEvents: 10 } });
    seed(polar, 25, (i) => T0 + i);
    const report = await mirror.reconcile();
    expect(report.pruned).toBe(15);
    const merged = await mirror.query({ limit: Infinity });
    expect(merged.map((e) => e.userEvent?.metadata['n'])).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
  });

  it('prunes mirrored events older than maxAge', async () => {
    const { polar, another } = await rig();
    const { buffer, mirror } = another({ retention: { maxAge: 24 * 3_600_000 } });
    seed(polar, 3, (i) => Date.now() - 48 * 3_600_000 + i);
    seed(polar, 2, (i) => Date.now() - 3_600_000 + i);
    expect((await mirror.reconcile()).pruned).toBe(3);
    expect((await buffer.stats()).mirrored).toBe(2);
  });

  it('is checked eagerly with a TypeError', async () => {
    const { another } = await rig();
    expect(() => another({ retention: { maxEvents: 0 } })).toThrow(/retention.maxEvents/);
    expect(() => another({ retention: { maxAgeDays: 3 } as never })).toThrow(/retention.maxAgeDays/);
  });
});

void sum;
