import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE, type Engine, launchEngine } from './engines.js';
import { waitFor } from './harness.js';
import { startDemo } from '../../examples/browser/serve.mjs';

type Demo = { url: string; polar: import('../../dist/mock-server.js').MockPolarServer; close(): Promise<void> };

let engine: Engine;
let demo: Demo;
beforeAll(async () => {
  engine = await launchEngine();
  demo = await startDemo();
});
afterAll(async () => {
  await engine?.close();
  await demo?.close();
});

describe(`the browser example (examples/browser), in ${ENGINE}`, () => {
  it('renders the queue and a usage bar that keeps dropping while the server is down, and the merged history after flush and reconcile (screenshots)', async () => {
    const session = await engine.newSession();
    const page = await session.newTab();
    await page.goto(demo.url);
    // Uncaught errors and rejections of the page, kept for the end.
    await page.evaluate(() => {
      const w = window as unknown as { pageErrors: string[] };
      w.pageErrors = [];
      addEventListener('error', (e) => w.pageErrors.push(String(e.message)));
      addEventListener('unhandledrejection', (e) => w.pageErrors.push(String(e.reason)));
    });
    await waitFor('the example to be ready', () => page.evaluate(() => document.body.dataset.ready === 'true'));
    const textOf = (selector: string) => page.evaluate((s) => document.querySelector(s)?.textContent ?? null, selector);
    const count = (selector: string) => page.evaluate((s) => document.querySelectorAll(s).length, selector);
    const click = (selector: string) => page.evaluate((s) => (document.querySelector(s) as HTMLElement).click(), selector);
    const shot = async (name: string) => {
      const png = await page.screenshot();
      writeFileSync(join(dir, name), png);
      return png;
    };
    const dir = mkdtempSync(join(tmpdir(), 'peb-screens-'));
    const credits = async () => [
      await textOf('#credits-left'),
      await textOf('#credits-detail'),
      await page.evaluate(() => (document.querySelector('#credits-bar') as HTMLElement).style.width),
    ];
    await waitFor('the credits from the portal', async () => (await credits())[0] === '100');
    expect(await credits()).toEqual(['100', 'of 100 API calls', '100%']);
    const empty = await shot('1-empty.png');

    await page.evaluate(
      () => (document.querySelector('#offline') as HTMLInputElement).checked || (document.querySelector('#offline') as HTMLInputElement).click(),
    );
    await click('#track10');
    await waitFor('10 queued rows', async () => (await count('#queue tbody tr')) === 10);
    await waitFor('10 pending rows', async () => (await count('#queue tbody td.s-pending')) === 10);
    // The usage bar moved at once, with the server refusing every request.
    await waitFor('the credits to drop by the 10 unsent events', async () => (await credits())[0] === '90');
    expect(await credits()).toEqual(['90', 'of 100 API calls, 10 not counted by Polar yet', '90%']);
    await click('#track');
    await waitFor('the credits to drop by one more', async () => (await credits())[0] === '89');
    const queued = await shot('2-queued.png');
    expect(await textOf('#queue-count')).toBe('(11 waiting)');
    expect(demo.polar.events.filter((e) => e.name === 'api_call')).toHaveLength(0);

    await page.evaluate(
      () => !(document.querySelector('#offline') as HTMLInputElement).checked || (document.querySelector('#offline') as HTMLInputElement).click(),
    );
    await waitFor('everything sent', async () => {
      await click('#flush');
      return demo.polar.events.filter((e) => e.name === 'api_call').length === 11;
    });
    // Polar holds them; its meter job trails ingestion, so the device still counts them: the balance holds.
    expect(await credits()).toEqual(['89', 'of 100 API calls, 11 not counted by Polar yet', '89%']);
    await click('#reconcile');
    await waitFor('11 confirmed rows in the merged history', async () => (await count('#history tbody td.s-confirmed')) === 11);
    const merged = await shot('3-merged.png');
    console.log(`[example] screenshots in ${dir}`);

    for (const png of [empty, queued, merged]) {
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(png.length).toBeGreaterThan(10_000);
    }
    // Rendering the queue and then the history changed what is on screen.
    expect(queued.equals(empty)).toBe(false);
    expect(merged.equals(queued)).toBe(false);
    expect(statSync(join(dir, '2-queued.png')).size).toBe(queued.length);
    // What the server accepted: each of the 11 events in one answered ingest only.
    const accepted = demo.polar.requests
      .filter((r) => r.kind === 'ingest' && r.status === 200)
      .flatMap((r) => (r.body as { events: { external_id: string }[] }).events.map((e) => e.external_id));
    expect(accepted).toHaveLength(11);
    expect(new Set(accepted).size).toBe(11);
    expect(await page.evaluate(() => (window as unknown as { pageErrors: string[] }).pageErrors)).toEqual([]);
    writeFileSync(join(dir, 'ok'), '');
    await session.close();
  });
});
