// polar-event-buffer/react on the server (react-dom/server, Node): each hook renders its loading
// state without touching IndexedDB or the network, with a real buffer or with none at all.
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, test } from 'vitest';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import { customerPortalTransport } from '../../src/meters/index.js';
import { createMirror } from '../../src/mirror/index.js';
import { useBufferStats, useMeterBalance, useMeterUsage, type LiveState } from '../../src/react/index.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const startPolar = useMockPolar();
const close = autoClose();

/** A fake-indexeddb factory that counts open() calls: a server render must make none. */
function countingIndexedDB() {
  const factory = freshIndexedDB();
  const counter = { opens: 0 };
  const open = factory.open.bind(factory);
  factory.open = (...args: Parameters<IDBFactory['open']>) => {
    counter.opens++;
    return open(...args);
  };
  return { factory, counter };
}

/** Renders a hook's state as text, so the markup shows what the hook returned. */
function show(state: LiveState<unknown>) {
  return createElement('p', null, state.loading ? 'loading' : state.error ? `error: ${state.error.message}` : JSON.stringify(state.data));
}

const METER = {
  id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
  name: 'API calls',
  filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
  aggregation: { func: 'count' },
};

describe('useBufferStats on the server', () => {
  test('renders the loading state and opens no database', async () => {
    const polar = await startPolar();
    const { factory, counter } = countingIndexedDB();
    const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: polar.url }), indexedDB: factory, autoFlush: false });
    close(buffer);
    function Stats() {
      return show(useBufferStats(buffer));
    }
    expect(renderToString(createElement(Stats))).toBe('<p>loading</p>');
    expect(counter.opens).toBe(0);
    expect(polar.requests).toHaveLength(0);
  });

  test('renders the loading state with no buffer, where there is no IndexedDB', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB');
    delete (globalThis as { indexedDB?: unknown }).indexedDB;
    try {
      function Stats() {
        return show(useBufferStats(null));
      }
      expect(renderToString(createElement(Stats))).toBe('<p>loading</p>');
    } finally {
      if (saved) Object.defineProperty(globalThis, 'indexedDB', saved);
    }
  });
});

describe('useMeterUsage and useMeterBalance on the server', () => {
  test('render the loading state with a real mirror and portal, and read neither IndexedDB nor the portal', async () => {
    const polar = await startPolar({ customers: [{ external_id: 'ada', email: 'ada@example.com' }], meters: [METER] });
    polar.credit('ada', METER.id, 100);
    const { factory, counter } = countingIndexedDB();
    const buffer = createEventBuffer({ transport: httpTransport({ baseUrl: polar.url }), indexedDB: factory, autoFlush: false });
    close(buffer);
    const mirror = createMirror(buffer);
    const portal = customerPortalTransport({ baseUrl: polar.url, token: () => 'polar_cst_never_asked', meters: [METER] });
    function Usage() {
      const usage = useMeterUsage(mirror, METER, { externalCustomerId: 'ada', since: new Date(0) });
      const balance = useMeterBalance(mirror, portal, METER.id, { externalCustomerId: 'ada' });
      return createElement('div', null, show(usage), show(balance));
    }
    expect(renderToString(createElement(Usage))).toBe('<div><p>loading</p><p>loading</p></div>');
    expect(counter.opens).toBe(0);
    expect(polar.requests).toHaveLength(0);
  });

  test('render the loading state with no mirror and no portal, where there is no IndexedDB', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB');
    delete (globalThis as { indexedDB?: unknown }).indexedDB;
    try {
      function Usage() {
        return createElement('div', null, show(useMeterUsage(null, METER)), show(useMeterBalance(undefined, null, METER.id, { externalCustomerId: 'ada' })));
      }
      expect(renderToString(createElement(Usage))).toBe('<div><p>loading</p><p>loading</p></div>');
    } finally {
      if (saved) Object.defineProperty(globalThis, 'indexedDB', saved);
    }
  });
});
