// polar-event-buffer/react in real Chromium: components re-render when an event is tracked, in the
// tab that tracked it and in a second tab on the same origin.
import { join } from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { ROOT, startHarness, useChromium, waitFor } from './harness.js';

type W = { M: any };
const rig = useChromium();
let app = '';

beforeAll(async () => {
  // The page's app with React and the built dist/ entries in one module, as a user's bundler would.
  const result = await build({
    entryPoints: [join(ROOT, 'test/browser/pages/meters-app.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  app = result.outputFiles[0]!.text;
});

/** Opens the React test page in a new tab of `context` and opens its buffer. */
async function openTab(context: BrowserContext, options: Record<string, unknown> = {}): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[page error] ${error.message}`));
  await page.route('**/bundle/meters-app.js', (route) => route.fulfill({ body: app, contentType: 'text/javascript' }));
  await page.goto(`${rig.h.site}/pages/meters.html?api=${encodeURIComponent(rig.h.polar.url)}`);
  await page.waitForFunction(() => (window as unknown as W).M !== undefined);
  await page.evaluate((o) => (window as unknown as W).M.open(o), options);
  return page;
}

const text = (page: Page, id: string) => page.evaluate((i) => (window as unknown as W).M.text(i), id);

describe('polar-event-buffer/react, in real Chromium', () => {
  it('useBufferStats re-renders when an event is tracked, in this tab and in a second tab', async () => {
    rig.h = await startHarness();
    rig.context = await rig.browser.newContext();
    const a = await openTab(rig.context);
    const b = await openTab(rig.context);
    await waitFor('both tabs to render 0 pending', async () => (await text(a, 'pending')) === '0' && (await text(b, 'pending')) === '0');

    await a.evaluate(() => (window as unknown as W).M.track(3));
    await waitFor('tab A to render 3 pending', async () => (await text(a, 'pending')) === '3');
    await waitFor('tab B to render 3 pending', async () => (await text(b, 'pending')) === '3');

    await b.evaluate(() => (window as unknown as W).M.flush());
    expect(rig.h.polar.events).toHaveLength(3);
    await waitFor('tab A to render 0 pending after B flushed', async () => (await text(a, 'pending')) === '0');
  });
});
