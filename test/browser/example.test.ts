import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, waitFor } from './harness.js';
// @ts-expect-error: a plain .mjs script without types
import { startDemo } from '../../examples/browser/serve.mjs';

type Demo = { url: string; polar: import('../../dist/mock-server.js').MockPolarServer; close(): Promise<void> };

let browser: Browser;
let demo: Demo;
beforeAll(async () => {
  browser = await launchChromium();
  demo = await startDemo();
});
afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

describe('the browser example (examples/browser), in real Chromium', () => {
  it('renders the queue and a usage bar that keeps dropping while the server is down, and the merged history after flush and reconcile (screenshots)', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(demo.url);
    await page.waitForSelector('body[data-ready="true"]');
    const dir = mkdtempSync(join(tmpdir(), 'peb-screens-'));
    const credits = async () => [
      await page.textContent('#credits-left'),
      await page.textContent('#credits-detail'),
      await page.$eval('#credits-bar', (e) => (e as HTMLElement).style.width),
    ];
    await waitFor('the credits from the portal', async () => (await credits())[0] === '100');
    expect(await credits()).toEqual(['100', 'of 100 API calls', '100%']);
    const empty = await page.screenshot({ path: join(dir, '1-empty.png') });

    await page.check('#offline');
    await page.click('#track10');
    await waitFor('10 queued rows', async () => (await page.locator('#queue tbody tr').count()) === 10);
    await waitFor('10 pending rows', async () => (await page.locator('#queue tbody td.s-pending').count()) === 10);
    // The usage bar moved at once, with the server refusing every request.
    await waitFor('the credits to drop by the 10 unsent events', async () => (await credits())[0] === '90');
    expect(await credits()).toEqual(['90', 'of 100 API calls, 10 not sent yet', '90%']);
    await page.click('#track');
    await waitFor('the credits to drop by one more', async () => (await credits())[0] === '89');
    const queued = await page.screenshot({ path: join(dir, '2-queued.png') });
    expect(await page.locator('#queue-count').textContent()).toBe('(11 waiting)');
    expect(demo.polar.events.filter((e) => e.name === 'api_call')).toHaveLength(0);

    await page.uncheck('#offline');
    await waitFor('everything sent', async () => {
      await page.click('#flush');
      return demo.polar.events.filter((e) => e.name === 'api_call').length === 11;
    });
    // The server counts them now: the portal's balance, nothing left unsent.
    expect(demo.polar.customerMeters('user_42')[0]).toMatchObject({ credited_units: 100, consumed_units: 11, balance: 89 });
    await waitFor('the portal balance with nothing unsent', async () => (await credits())[1] === 'of 100 API calls');
    expect(await credits()).toEqual(['89', 'of 100 API calls', '89%']);
    await page.click('#reconcile');
    await waitFor('11 confirmed rows in the merged history', async () => (await page.locator('#history tbody td.s-confirmed').count()) === 11);
    const merged = await page.screenshot({ path: join(dir, '3-merged.png') });
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
    expect(errors).toEqual([]);
    writeFileSync(join(dir, 'ok'), '');
    await context.close();
  });
});
