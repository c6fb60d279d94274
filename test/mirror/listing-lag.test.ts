import { describe, expect, it, vi } from 'vitest';
import { createMirror } from '../../src/mirror/mirror.js';
import { SWEEP_INTERVAL_MS } from '../../src/mirror/reconciler.js';
import type { Transport } from '../../src/transport/transport.js';
import { MovableClock, seed, useRig } from './support.js';

// Polar lists events from an asynchronous copy (CONTRACT.md, "Wire protocol"): the mock's
// `listingLag` (real ms) and `orphans: 'hidden'` play that copy.
const rig = useRig();
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Real milliseconds before the mock lists an ingested event: long enough for a reconcile to run first. */
const LAG = 2500;
const signal = () => new AbortController().signal;

describe('listing lag: not listed yet is not lost', () => {
  it('keeps unlisted sent events within the default grace period (30 min), confirms them once listed', async () => {
    const clock = new MovableClock();
    const { polar, buffer, mirror } = await rig({ clock }, { listingLag: LAG });
    await buffer.trackMany([1, 2, 3].map((n) => ({ name: 'api_call', externalCustomerId: 'user_42', metadata: { n } })));
    expect(await buffer.flush()).toMatchObject({ sent: 3 });
    const listedAt = Date.now() + LAG;
    // 29 minutes later on the device's clock (past the old 10-minute default): still unlisted.
    clock.offset = 29 * MINUTE;
    expect(await mirror.reconcile()).toMatchObject({ fetched: 0, matched: 0, resent: 0 });
    expect(Date.now()).toBeLessThan(listedAt);
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 3, confirmed: 0 });
    expect(await buffer.flush()).toMatchObject({ sent: 0 });
    expect(polar.ingestRequests()).toHaveLength(1);

    // Reconciling until Polar lists them: each earlier pass finds nothing, and resends nothing.
    await vi.waitFor(async () => expect(await mirror.reconcile()).toMatchObject({ fetched: 3, matched: 3, resent: 0 }), { timeout: LAG + 5000, interval: 250 });
    expect(await buffer.stats()).toMatchObject({ sent: 0, confirmed: 3 });
    expect(polar.ingestRequests()).toHaveLength(1);
  });

  it('resends only after a reconcile that began once the grace period was over, and only once', async () => {
    const { polar, transport, another } = await rig({}, { listingLag: HOUR });
    const clock = new MovableClock();
    let whileListing: (() => void) | undefined;
    const slowList: Transport = {
      ingest: (events, options) => transport.ingest(events, options),
      list: async (query, options) => {
        const answer = await transport.list!(query, options);
        whileListing?.();
        return answer;
      },
    };
    const { buffer, mirror } = another({ transport: slowList, clock, confirmGracePeriod: MINUTE });
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    await buffer.flush();

    // This reconcile lists before the grace period ends and finishes after it: no resend.
    clock.offset = MINUTE - 1000;
    whileListing = () => void (clock.offset = MINUTE + 1000);
    expect(await mirror.reconcile()).toMatchObject({ fetched: 0, resent: 0 });
    whileListing = undefined;
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 1 });
    // Nor one that did not cover the event's customer.
    expect(await mirror.reconcile({ externalCustomerId: 'someone_else' })).toMatchObject({ resent: 0 });
    await buffer.flush();
    expect(polar.ingestRequests()).toHaveLength(1);

    // The next one begins after the grace period and still does not find it: sent again, deduped.
    expect(await mirror.reconcile()).toMatchObject({ resent: 1 });
    expect(await buffer.flush()).toMatchObject({ duplicates: 1 });
    expect(polar.ingestRequests()).toHaveLength(2);
    expect([...polar.countByExternalId().values()]).toEqual([1]);
    // The server said it holds it: never sent a third time, however long it stays unlisted.
    clock.offset = 10 * MINUTE;
    expect(await mirror.reconcile()).toMatchObject({ resent: 0 });
    await buffer.flush();
    expect(polar.ingestRequests()).toHaveLength(2);
  });

  it('keeps a child whose parent has not arrived: sent, not resent, confirmed once the parent arrives', async () => {
    const clock = new MovableClock();
    const { polar, buffer, mirror, another } = await rig({ clock }, { orphans: 'hidden' });
    // Another device tracks the parent and is offline for now; this one tracks a step of it.
    const device = another({ clock: new MovableClock() });
    await device.buffer.track({ name: 'job', externalCustomerId: 'user_42', externalId: 'job-1' });
    const child = await buffer.track({ name: 'job_step', externalCustomerId: 'user_42', parentId: 'job-1' });
    await buffer.flush();
    expect(polar.storedExternalIds()).toEqual([child.externalId]);

    clock.offset = 29 * MINUTE;
    expect(await mirror.reconcile()).toMatchObject({ fetched: 0, matched: 0, resent: 0 });
    expect(await buffer.stats()).toMatchObject({ pending: 0, sent: 1 });
    await buffer.flush();
    expect(polar.ingestRequests()).toHaveLength(1);

    // The parent arrives: the server links the child and lists both.
    await device.buffer.flush();
    expect(await mirror.reconcile()).toMatchObject({ fetched: 2, added: 2, matched: 1, resent: 0 });
    const [mirrored] = await mirror.query({ name: 'job_step' });
    expect(mirrored).toMatchObject({ externalId: child.externalId, status: 'confirmed' });
    const parentId = polar.stored().find((s) => s.externalId === 'job-1')!.event.id;
    expect(mirrored!.userEvent?.parentId).toBe(parentId);
    expect(polar.ingestRequests()).toHaveLength(2);
  });
});

describe('look-back window: events other devices backdated', () => {
  /** Three hours ago, on a whole second. */
  const T0 = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
  const backdated = (external_id: string, timestampMs: number) => [
    { name: 'offline_call', external_customer_id: 'user_42', timestamp: new Date(timestampMs).toISOString(), external_id },
  ];

  it('picks up an event backdated before the cursor at the next hourly sweep, once, deduped by id', async () => {
    const clock = new MovableClock();
    const { polar, transport, mirror } = await rig({ clock });
    seed(polar, 2, (i) => T0 + i * MINUTE);
    expect(await mirror.reconcile()).toMatchObject({ added: 2 });
    // Another device comes online and sends what it tracked before the newest mirrored event.
    await transport.ingest(backdated('other-1', T0 - HOUR), { signal: signal() });
    // Within the hour a reconcile reads from the cursor's millisecond only: one request.
    expect(await mirror.reconcile()).toMatchObject({ fetched: 1, added: 0, unchanged: 1, pages: 1 });
    clock.offset = SWEEP_INTERVAL_MS;
    expect(await mirror.reconcile()).toMatchObject({ fetched: 3, added: 1, unchanged: 2, updated: 0 });
    expect(await mirror.reconcile()).toMatchObject({ fetched: 1, added: 0, unchanged: 1, updated: 0 });
    const names = (await mirror.query({ externalCustomerId: 'user_42' })).map((e) => e.name);
    expect(names).toEqual(['offline_call', 'api_call', 'api_call']);
  });

  it('sweeps back `lookBack` ms before the cursor, no further', async () => {
    const clock = new MovableClock();
    const { polar, transport, mirror } = await rig({ lookBack: HOUR, clock });
    seed(polar, 1, () => T0);
    await mirror.reconcile();
    await transport.ingest([...backdated('too-old', T0 - 2 * HOUR), ...backdated('in-window', T0 - 30 * MINUTE)], { signal: signal() });
    clock.offset = SWEEP_INTERVAL_MS;
    expect(await mirror.reconcile()).toMatchObject({ fetched: 2, added: 1, unchanged: 1 });
    const names = (await mirror.query({ limit: Infinity })).map((e) => e.name);
    expect(names).toEqual(['offline_call', 'api_call']);
  });

  it('never reads back what retention prunes (no add-and-prune on every reconcile)', async () => {
    const { polar, mirror } = await rig({ retention: { maxAge: 2 * HOUR } });
    seed(polar, 1, () => T0);
    seed(polar, 1, () => Date.now() - HOUR);
    expect(await mirror.reconcile()).toMatchObject({ added: 2, pruned: 1 });
    expect(await mirror.reconcile()).toMatchObject({ fetched: 1, added: 0, pruned: 0 });
  });

  it('is checked eagerly with a TypeError naming it', async () => {
    const { buffer } = await rig();
    for (const bad of [-1, Number.NaN, Infinity, '1h', null]) {
      expect(() => createMirror(buffer, { lookBack: bad as never })).toThrow(/`lookBack`/);
    }
    expect(() => createMirror(buffer, { lookback: 1 } as never)).toThrow(/Unknown option `lookback`.*lookBack/);
    expect(() => createMirror(buffer, { lookBack: 0 })).not.toThrow();
  });
});
