import { describe, expect, it } from 'vitest';
import { ENGINE, openTestPage, startHarness, useEngine } from './harness.js';

type W = { T: any };

const rig = useEngine();

describe(`another tab upgrading the database, in ${ENGINE}`, () => {
  it("closes the open tab's connection on versionchange, lets the upgrade through, and keeps that tab working", async () => {
    rig.h = await startHarness();
    rig.session = await rig.engine.newSession();
    const older = await openTestPage(rig.session, rig.h);
    await older.evaluate(() => (window as unknown as W).T.open());
    const before: string[] = await older.evaluate(() => (window as unknown as W).T.track(5, 'before'));

    // A "newer library" in another tab opens the same database one version up and adds a store.
    const newer = await openTestPage(rig.session, rig.h);
    const upgrade = await newer.evaluate(
      () =>
        new Promise<{ version: number; blocked: boolean; stores: string[] }>((resolve, reject) => {
          let blocked = false;
          const probe = indexedDB.open('browser-suite');
          probe.onsuccess = () => {
            const current = probe.result.version;
            probe.result.close();
            const request = indexedDB.open('browser-suite', current + 1);
            request.onblocked = () => (blocked = true);
            request.onupgradeneeded = () => request.result.createObjectStore('fromNewerVersion');
            request.onerror = () => reject(request.error);
            request.onsuccess = () => {
              const db = request.result;
              resolve({ version: db.version, blocked, stores: [...db.objectStoreNames] });
              // Stays open, as the newer tab's own buffer would.
              (window as unknown as { keep: IDBDatabase }).keep = db;
            };
          };
        }),
    );
    expect(upgrade.blocked).toBe(false);
    expect(upgrade.stores).toContain('fromNewerVersion');

    // The older tab reopens at the newer version and carries on.
    const after: string[] = await older.evaluate(() => (window as unknown as W).T.track(5, 'after'));
    const stats = await older.evaluate(() => (window as unknown as W).T.stats());
    expect(stats.pending).toBe(10);
    const report = await older.evaluate(() => (window as unknown as W).T.flush());
    expect(report.sent).toBe(10);
    expect([...rig.h.polar.countByExternalId().keys()].sort()).toEqual([...before, ...after].sort());
    expect(await older.evaluate(() => (window as unknown as W).T.log.errors)).toEqual([]);
  });
});
