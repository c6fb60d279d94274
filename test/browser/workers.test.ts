import { describe, expect, it } from 'vitest';
import { ENGINE, openTestPage, startHarness, useEngine, waitFor } from './harness.js';

const rig = useEngine();

type Call = (cmd: string, ...args: unknown[]) => Promise<any>;

describe(`workers, in ${ENGINE}`, () => {
  it('runs the buffer in a dedicated worker: tracks into IndexedDB and flushes each event once', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    await page.evaluate((api) => {
      const worker = new Worker(`/pages/worker.js?api=${encodeURIComponent(api)}`, { type: 'module' });
      let seq = 0;
      const call: Call = (cmd, ...args) =>
        new Promise((resolve, reject) => {
          const id = ++seq;
          const onMessage = (event: MessageEvent) => {
            if (event.data.id !== id) return;
            worker.removeEventListener('message', onMessage);
            if (event.data.ok) resolve(event.data.value);
            else reject(new Error(event.data.error));
          };
          worker.addEventListener('message', onMessage);
          worker.postMessage({ id, cmd, args });
        });
      (window as unknown as { worker: Call }).worker = call;
    }, rig.h.polar.url);
    const call = (cmd: string, ...args: unknown[]) =>
      page.evaluate(([c, a]) => (window as unknown as { worker: Call }).worker(c as string, ...(a as unknown[])), [cmd, args] as const);

    expect(await call('open')).toBe(true);
    const ids: string[] = await call('track', 12, 'worker');
    expect((await call('stats')).pending).toBe(12);
    expect(rig.h.polar.events).toHaveLength(0);
    const report = await call('flush');
    expect(report.sent).toBe(12);
    const counts = rig.h.polar.countByExternalId();
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect(Math.max(...counts.values())).toBe(1);
    // The page sees the same database.
    expect(
      await page.evaluate(async () => {
        const T = (window as unknown as { T: any }).T;
        T.open();
        return (await T.stats()).sent;
      }),
    ).toBe(12);
  });

  it('runs the buffer in a service worker, where a Background Sync event (or, without it, a message) triggers the flush', async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const page = await openTestPage(rig.session, rig.h);
    const hasSync = await page.evaluate(async (api) => {
      const registration = await navigator.serviceWorker.register(`/pages/sw.js?api=${encodeURIComponent(api)}`, { type: 'module', scope: '/pages/' });
      await navigator.serviceWorker.ready;
      const sw = registration.active!;
      let seq = 0;
      const call: Call = (cmd, ...args) =>
        new Promise((resolve, reject) => {
          const id = ++seq;
          const onMessage = (event: MessageEvent) => {
            if (event.data.id !== id) return;
            navigator.serviceWorker.removeEventListener('message', onMessage);
            if (event.data.ok) resolve(event.data.value);
            else reject(new Error(event.data.error));
          };
          navigator.serviceWorker.addEventListener('message', onMessage);
          sw.postMessage({ id, cmd, args });
        });
      (window as unknown as { sw: Call; registration: ServiceWorkerRegistration }).sw = call;
      (window as unknown as { registration: ServiceWorkerRegistration }).registration = registration;
      return 'sync' in registration;
    }, rig.h.polar.url);
    const call = (cmd: string, ...args: unknown[]) =>
      page.evaluate(([c, a]) => (window as unknown as { sw: Call }).sw(c as string, ...(a as unknown[])), [cmd, args] as const);

    expect(await call('open')).toBe(true);
    const ids: string[] = await call('track', 8, 'sw');
    expect((await call('stats')).pending).toBe(8);
    expect(rig.h.polar.events).toHaveLength(0);

    if (hasSync) {
      await page.evaluate(() =>
        (window as unknown as { registration: ServiceWorkerRegistration & { sync: { register(tag: string): Promise<void> } } }).registration.sync.register(
          'polar-event-buffer',
        ),
      );
      await waitFor('the sync event to flush', () => rig.h.polar.events.length === 8);
      expect(await call('syncs')).toContain('polar-event-buffer');
    } else {
      expect((await call('flush')).sent).toBe(8);
    }
    const counts = rig.h.polar.countByExternalId();
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect(Math.max(...counts.values())).toBe(1);
    await waitFor('sent in the service worker', async () => (await call('stats')).sent === 8);
  });
});
