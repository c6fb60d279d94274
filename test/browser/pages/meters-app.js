// The React test page: components on polar-event-buffer/react, rendered with react-dom/client into
// #root. The suite drives `window.M` and reads what the components rendered from the DOM.
// Bundled by esbuild with react and the built dist/ entries (one copy of each module).
import { createElement as h, StrictMode } from 'react';
import { createRoot, hydrateRoot } from 'react-dom/client';
import { renderToString } from 'react-dom/server';
import { createEventBuffer, httpTransport } from '../../../dist/index.js';
import { customerPortalTransport } from '../../../dist/meters.js';
import { createMirror } from '../../../dist/mirror.js';
import { useBufferStats, useMeterBalance, useMeterUsage } from '../../../dist/react.js';

const api = new URLSearchParams(location.search).get('api');
const renders = {};

/** Shows a hook's state; each render counts, so the suite can tell a re-render from a stale DOM. */
function Show({ id, state, pick }) {
  renders[id] = (renders[id] ?? 0) + 1;
  const text = state.loading ? 'loading' : state.error && state.data === undefined ? `error: ${state.error.message}` : pick(state.data);
  return h('output', { id, 'data-error': state.error ? state.error.message : '' }, text);
}

function Stats({ buffer }) {
  return h(Show, { id: 'pending', state: useBufferStats(buffer), pick: (s) => String(s.pending) });
}

function Usage({ mirror, meter, customer }) {
  const state = useMeterUsage(mirror, meter, { externalCustomerId: customer });
  return h(Show, { id: 'usage', state, pick: (u) => `${u.value} = ${u.server} + ${u.local}${u.exact ? ' exact' : ''}` });
}

function Balance({ mirror, portal, meter, customer }) {
  const state = useMeterBalance(mirror, portal, meter.id, { externalCustomerId: customer });
  return h(Show, { id: 'balance', state, pick: (b) => `${b.balance} left of ${b.credited} (${b.uncounted} unsent)` });
}

function App({ buffer, mirror, portal, meter, customer }) {
  return h(
    StrictMode,
    null,
    h(Stats, { buffer }),
    meter && h(Usage, { mirror, meter, customer }),
    meter && portal && h(Balance, { mirror, portal, meter, customer }),
  );
}

const M = {
  renders,
  buffer: null,
  mirror: null,
  hydrationErrors: [],
  /**
   * Opens the buffer and its mirror and renders the app; `meter` and `token` add usage and balance.
   * With `hydrate`, the app is first rendered to a string (as a server would) and then hydrated.
   */
  open({ meter, token, customer = 'ada', hydrate = false, ...options } = {}) {
    M.buffer = createEventBuffer({
      dbName: 'react-suite',
      autoFlush: false,
      retry: { retries: 0 },
      transport: httpTransport({ baseUrl: api, timeout: 5000 }),
      ...options,
    });
    M.mirror = createMirror(M.buffer);
    const portal = token ? customerPortalTransport({ baseUrl: api, token: () => token, meters: [meter] }) : null;
    const app = h(App, { buffer: M.buffer, mirror: M.mirror, portal, meter, customer });
    const root = document.getElementById('root');
    if (!hydrate) {
      createRoot(root).render(app);
      return true;
    }
    root.innerHTML = renderToString(app);
    const served = root.innerHTML;
    hydrateRoot(root, app, { onRecoverableError: (error) => M.hydrationErrors.push(String(error?.message ?? error)) });
    return served;
  },
  /** Tracks `count` events called `name` for customer ada, in one trackMany. */
  async track(count, name = 'api_call') {
    const inputs = Array.from({ length: count }, (_, i) => ({ name, externalCustomerId: 'ada', metadata: { i } }));
    return (await M.buffer.trackMany(inputs)).map((e) => e.externalId);
  },
  flush: () => M.buffer.flush(),
  reconcile: () => M.mirror.reconcile({ externalCustomerId: 'ada' }),
  text: (id) => document.getElementById(id)?.textContent ?? null,
  error: (id) => document.getElementById(id)?.dataset.error ?? null,
};
window.M = M;
