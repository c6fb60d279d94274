// The life of an event (contract rev. 3, issue 17): only an ingest answer moves a waiting event,
// every send of an event is the same body, and track() refuses what could never be delivered once.
import { describe, expect, it } from 'vitest';
import { EventValidationError, QueueFullError } from '../../src/errors.js';
import { CUSTOMER_ID } from '../fixtures/events-list/polar-wire.js';
import { useRig } from '../mirror/support.js';

const rig = useRig();
/** Minute-aligned and in the past: two devices can track the very same event. */
const MINUTE = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 60_000);
const twin = (extra: Record<string, unknown> = {}) => ({
  name: 'api_call',
  externalCustomerId: 'user_42',
  timestamp: MINUTE,
  metadata: { tokens: 5 },
  ...extra,
});
const FAST = { retries: 0, minTimeout: 1, maxTimeout: 1, randomize: false };
const ext = (polar: { stored(): { externalId: string | null }[] }) => polar.stored().map((s) => s.externalId);

describe('the life of an event', () => {
  it('defect 1: a reconcile after a lost answer takes no queue slot; the waiting events leave only on their own answer', async () => {
    const { buffer, mirror, polar } = await rig({ maxQueueSize: 2, retry: FAST });
    await buffer.trackMany([twin({ metadata: { n: 1 } }), twin({ metadata: { n: 2 } })]);
    polar.addFaults({ status: 503, afterProcessing: true });
    expect(await buffer.flush()).toMatchObject({ sent: 0 });
    expect(polar.stored()).toHaveLength(2);

    await mirror.reconcile({ externalCustomerId: 'user_42' });
    // Both still waiting, and the bound says so: nothing leaked, nothing is confirmed unsent.
    expect(await buffer.stats()).toMatchObject({ pending: 2, confirmed: 0 });
    await expect(buffer.track(twin({ metadata: { n: 3 } }))).rejects.toBeInstanceOf(QueueFullError);
    expect(await buffer.flush()).toMatchObject({ sent: 2, duplicates: 2 });
    // Their answer freed both slots, and linked them to the copies the reconcile had mirrored.
    await buffer.track(twin({ metadata: { n: 3 } }));
    await buffer.track(twin({ metadata: { n: 4 } }));
    expect(await buffer.stats()).toMatchObject({ pending: 2, sent: 0, confirmed: 2 });
  });

  it('defect 2: a waiting event is not confirmed by another device’s identical event, and reaches Polar', async () => {
    const { buffer: a, polar, another } = await rig();
    const { buffer: b, mirror: bMirror } = another();
    await a.track(twin());
    const mine = await b.track(twin());
    await a.flush();
    await bMirror.reconcile({ externalCustomerId: 'user_42' });
    expect(await b.stats()).toMatchObject({ pending: 1, confirmed: 0 });
    expect(await b.flush()).toMatchObject({ sent: 1, duplicates: 0 });
    expect(ext(polar)).toContain(mine.externalId);
    expect(polar.stored()).toHaveLength(2);
  });

  it('defect 11: of two identical events, a refused (429) waiting one is not confirmed by the other’s copy', async () => {
    const { buffer: a, polar, another } = await rig();
    const { buffer: b, mirror: bMirror } = another({ retry: FAST });
    await a.track(twin());
    const refused = await b.track(twin());
    polar.addFaults({ status: 429, retryAfter: 0 });
    expect(await b.flush()).toMatchObject({ sent: 0 });
    await a.flush();
    await bMirror.reconcile({ externalCustomerId: 'user_42' });
    expect((await b.stats()).pending).toBe(1);
    expect(await b.flush()).toMatchObject({ sent: 1 });
    expect(ext(polar)).toContain(refused.externalId);
    expect(polar.stored()).toHaveLength(2);
  });

  it('defect 3: a resend after a lost answer, with the server clock 60 s behind, is the same body and is counted once', async () => {
    const { buffer, mirror, polar } = await rig({ retry: FAST }, { clockOffsetMs: -60_000 });
    // The first answer teaches the buffer the server's clock.
    await buffer.track(twin({ metadata: { warm: true } }));
    await buffer.flush();
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 1 });

    const event = await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', metadata: { n: 1 } });
    polar.addFaults({ drop: true, afterProcessing: true });
    expect(await buffer.flush()).toMatchObject({ sent: 0 });
    expect(await buffer.flush()).toMatchObject({ sent: 1, duplicates: 1 });
    const bodies = polar
      .ingestRequests()
      .flatMap((r) => (r.body as { events: { external_id: string }[] }).events)
      .filter((e) => e.external_id === event.externalId);
    expect(bodies).toHaveLength(2);
    expect(bodies[1]).toEqual(bodies[0]);

    await mirror.reconcile({ externalCustomerId: 'user_42' });
    expect(await buffer.stats()).toMatchObject({ sent: 0, confirmed: 2 });
    const listed = (await mirror.query({ externalCustomerId: 'user_42' })).filter((e) => e.metadata['n'] === 1);
    expect(listed).toHaveLength(1);
  });

  it('defect 4: an upper-case customerId is stored lower case, as Polar answers it, and is confirmed', async () => {
    const { buffer, mirror } = await rig();
    const event = await buffer.track({ name: 'api_call', customerId: CUSTOMER_ID.toUpperCase(), metadata: { n: 1 } });
    expect(event.customerId).toBe(CUSTOMER_ID.toLowerCase());
    await buffer.flush();
    await mirror.reconcile();
    expect(await buffer.stats()).toMatchObject({ sent: 0, confirmed: 1 });
  });

  it('defect 5: a parentId loop is refused at track(), within one trackMany or through a queued event (path parentId)', async () => {
    const { buffer } = await rig();
    const within = await buffer.trackMany([twin({ externalId: 'x', parentId: 'y' }), twin({ externalId: 'y', parentId: 'x' })]).catch((e: unknown) => e);
    expect(within).toBeInstanceOf(EventValidationError);
    expect((within as EventValidationError).failures.map((f) => f.path)).toEqual([
      ['0', 'parentId'],
      ['1', 'parentId'],
    ]);
    await buffer.track(twin({ externalId: 'b', parentId: 'a' }));
    const through = await buffer.track(twin({ externalId: 'a', parentId: 'b' })).catch((e: unknown) => e);
    expect(through).toBeInstanceOf(EventValidationError);
    expect((through as EventValidationError).failures).toEqual([{ path: ['parentId'], message: expect.stringContaining('a → b → a') }]);
    expect((await buffer.stats()).pending).toBe(1);
  });

  it('defect 6: an externalId queued for another customer’s event is refused, naming it (path externalId)', async () => {
    const { buffer, polar } = await rig();
    await buffer.track({ name: 'api_call', externalCustomerId: 'alice', externalId: 'order-7' });
    const other = await buffer.track({ name: 'api_call', externalCustomerId: 'bob', externalId: 'order-7' }).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(EventValidationError);
    expect((other as EventValidationError).failures).toEqual([{ path: ['externalId'], message: expect.stringContaining('"order-7"') }]);
    // The same event again is not another one.
    expect((await buffer.track({ name: 'api_call', externalCustomerId: 'alice', externalId: 'order-7' })).externalCustomerId).toBe('alice');
    await buffer.flush();
    expect(polar.events.map((e) => e.external_customer_id)).toEqual(['alice']);
  });

  it('a child is never sent before its parent: an identical copy of the parent elsewhere does not release it', async () => {
    const { buffer: a, polar, another } = await rig();
    const { buffer: b, mirror: bMirror } = another({ batchSize: 1 });
    await a.track(twin());
    const parent = await b.track(twin());
    const child = await b.track({ name: 'api_call', externalCustomerId: 'user_42', parentId: parent.externalId, metadata: { n: 2 } });
    await a.flush();
    await bMirror.reconcile({ externalCustomerId: 'user_42' });
    expect(await b.flush()).toMatchObject({ sent: 2, deadLettered: 0 });
    const order = polar.ingestRequests().flatMap((r) => (r.body as { events: { external_id: string }[] }).events.map((e) => e.external_id));
    expect(order.indexOf(parent.externalId)).toBeLessThan(order.indexOf(child.externalId));
    expect(ext(polar)).toEqual(expect.arrayContaining([parent.externalId, child.externalId]));
  });
});
