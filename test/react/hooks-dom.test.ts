// polar-event-buffer/react in a page (react-dom/client over happy-dom's document): the hooks
// subscribe, leave loading, and follow the buffer, also with options made anew at each render.
import { Window } from 'happy-dom';
import { act, createElement, useState } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { createMirror } from '../../src/mirror/index.js';
import { useBufferStats, useMeterUsage, type LiveState } from '../../src/react/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

// Only `window` and `document`: the buffer keeps Node's fetch and sees no page events.
const g = globalThis as Record<string, unknown>;
let page: Window;
beforeAll(() => {
  page = new Window();
  g['window'] = page;
  g['document'] = page.document;
  g['IS_REACT_ACT_ENVIRONMENT'] = true;
});
// The globals stay: React's scheduler may run once more after the last test (a late value), and
// reads `window` then; each test file runs in a process of its own.
afterAll(() => page.happyDOM.close());

const startPolar = useMockPolar();
const close = autoClose();
const roots: Root[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) act(() => root.unmount());
});

const METER = {
  id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
  name: 'API calls',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
  aggregation: { func: 'count' },
};

async function setup() {
  const polar = await startPolar();
  const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: polar.url }), indexedDB: freshIndexedDB(), autoFlush: false });
  close(buffer);
  return { polar, buffer, mirror: createMirror(buffer) };
}

/** Renders `component` into a fresh element; returns the element, whose text the test reads. */
async function mount(component: () => ReturnType<typeof createElement>) {
  const element = page.document.createElement('div') as unknown as HTMLElement;
  const root = createRoot(element);
  roots.push(root);
  await act(async () => root.render(createElement(component)));
  return element;
}

const text = (state: LiveState<unknown>, show: (data: any) => string) =>
  state.loading ? 'loading' : state.error ? `error: ${state.error.message}` : show(state.data);

describe('the hooks in a page', () => {
  test('useMeterUsage leaves loading when `since` is computed at each render, and follows the tracks', async () => {
    const { buffer, mirror } = await setup();
    let renders = 0;
    const element = await mount(function Usage() {
      renders++;
      const usage = useMeterUsage(mirror, METER, { externalCustomerId: 'ada', since: new Date(Date.now() - 3_600_000) });
      return createElement(
        'p',
        null,
        text(usage, (u) => `${u.value} calls`),
      );
    });
    await vi.waitFor(() => expect(element.textContent).toBe('0 calls'), { timeout: 10_000 });
    await act(() => buffer.trackMany([1, 2].map((i) => ({ name: 'api_call', externalCustomerId: 'ada', metadata: { i } }))));
    await vi.waitFor(() => expect(element.textContent).toBe('2 calls'), { timeout: 10_000 });
    // It settles: a render does not start a read that makes another render.
    const settled = renders;
    await act(() => buffer.stats());
    expect(renders).toBe(settled);
  });

  test('a hook given other options reads them, and never shows the old ones as loading', async () => {
    const { buffer, mirror } = await setup();
    await buffer.trackMany([
      { name: 'api_call', externalCustomerId: 'ada' },
      { name: 'api_call', externalCustomerId: 'bob' },
      { name: 'api_call', externalCustomerId: 'bob' },
    ]);
    let customer = 'ada';
    let rerender!: () => void;
    const element = await mount(function Usage() {
      const [, set] = useState(0);
      rerender = () => set((n) => n + 1);
      return createElement(
        'p',
        null,
        text(useMeterUsage(mirror, METER, { externalCustomerId: customer }), (u) => `${u.value} calls`),
      );
    });
    await vi.waitFor(() => expect(element.textContent).toBe('1 calls'), { timeout: 10_000 });
    customer = 'bob';
    await act(async () => rerender());
    await vi.waitFor(() => expect(element.textContent).toBe('2 calls'), { timeout: 10_000 });
  });

  test('useBufferStats follows the buffer', async () => {
    const { buffer } = await setup();
    const element = await mount(function Stats() {
      return createElement(
        'p',
        null,
        text(useBufferStats(buffer), (s) => `${s.pending} waiting`),
      );
    });
    await vi.waitFor(() => expect(element.textContent).toBe('0 waiting'), { timeout: 10_000 });
    await act(() => buffer.track({ name: 'api_call', externalCustomerId: 'ada' }));
    await vi.waitFor(() => expect(element.textContent).toBe('1 waiting'), { timeout: 10_000 });
  });
});
