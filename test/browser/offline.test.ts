import { describe, expect } from 'vitest';
import { ENGINE, itNeeds, openTestPage, startHarness, useEngine, waitFor } from './harness.js';

type W = { T: any };

/** The external_ids of the ingest requests the server answered 200, in the order they came. */
function acceptedIds(polar: { ingestRequests(): { status: number | null; body: unknown }[] }): string[] {
  return polar
    .ingestRequests()
    .filter((r) => r.status === 200)
    .flatMap((r) => (r.body as { events: { external_id: string }[] }).events.map((e) => e.external_id));
}

const rig = useEngine();

describe(`offline in ${ENGINE}`, () => {
  itNeeds(['offline'], 'keeps track() working offline and flushes by itself when the browser is back online', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    // No timer: only the `online` event can start the flush.
    await page.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 0 }));
    await rig.session!.setOffline(true);
    expect(await page.evaluate(() => navigator.onLine)).toBe(false);

    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(40, 'offline'));
    const stats = await page.evaluate(() => (window as unknown as W).T.stats());
    expect(stats.pending + stats.sending).toBe(40);
    expect(rig.h.polar.requests).toHaveLength(0);

    await rig.session!.setOffline(false);
    await waitFor('all 40 events on the server', () => rig.h.polar.events.length === 40);
    // Each event went on the wire once, in a request the server accepted.
    expect(acceptedIds(rig.h.polar).sort()).toEqual([...ids].sort());
    // The reachability probe (an empty ingest) came before the first batch.
    const ingests = rig.h.polar.ingestRequests();
    expect((ingests[0]!.body as { events: unknown[] }).events).toEqual([]);
    await waitFor('pending 0', async () => (await page.evaluate(() => (window as unknown as W).T.stats())).pending === 0);
  });

  itNeeds(['offline'], 'waits for the server to answer before flushing when the browser says online but the server is unreachable', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    await page.evaluate(() => (window as unknown as W).T.open({ autoFlush: true, flushInterval: 0 }));
    await rig.session!.setOffline(true);
    const ids: string[] = await page.evaluate(() => (window as unknown as W).T.track(10, 'unreachable'));

    rig.h.polar.setOnline(false);
    await rig.session!.setOffline(false);
    await waitFor('a refused probe', () => rig.h.polar.rejectedConnections > 0);
    // No batch was attempted: the events are neither sending nor marked with a failed attempt.
    const waiting = await page.evaluate(async () => {
      const { T } = window as unknown as W;
      const events = await T.lib.createMirror(T.buffer).query({ status: 'pending' });
      return events.map((e: { attempts: number }) => e.attempts);
    });
    expect(waiting).toEqual(new Array(10).fill(0));
    expect(await page.evaluate(() => (window as unknown as W).T.log.fetches.filter((f: { ids: string[] }) => f.ids.length > 0).length)).toBe(0);

    rig.h.polar.setOnline(true);
    await waitFor('all 10 events on the server', () => rig.h.polar.events.length === 10);
    expect(acceptedIds(rig.h.polar).sort()).toEqual([...ids].sort());
  });
});
