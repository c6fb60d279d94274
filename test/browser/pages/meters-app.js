// The React test page: components on polar-event-buffer/react, rendered with react-dom/client into
// #root. The suite drives `window.M` and reads what the components rendered from the DOM.
// Bundled by esbuild with react and the built dist/ entries (one copy of each module).
import { createElement as h, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createEventBuffer, httpTransport } from '../../../dist/index.js';
import { useBufferStats } from '../../../dist/react.js';

const params = new URLSearchParams(location.search);
const api = params.get('api');
const renders = {};

/** Shows a hook's state; each render counts, so the suite can tell a re-render from a stale DOM. */
function Show({ id, state, pick }) {
  renders[id] = (renders[id] ?? 0) + 1;
  const text = state.loading ? 'loading' : state.error ? `error: ${state.error.message}` : String(pick(state.data));
  return h('output', { id, 'data-loading': String(state.loading) }, text);
}

function Stats({ buffer }) {
  return h(Show, { id: 'pending', state: useBufferStats(buffer), pick: (s) => s.pending });
}

function App({ buffer }) {
  return h(StrictMode, null, h(Stats, { buffer }));
}

const M = {
  renders,
  buffer: null,
  open(options = {}) {
    M.buffer = createEventBuffer({
      dbName: 'react-suite',
      autoFlush: false,
      retry: { retries: 0 },
      transport: httpTransport({ baseUrl: api, timeout: 5000 }),
      ...options,
    });
    createRoot(document.getElementById('root')).render(h(App, { buffer: M.buffer }));
    return true;
  },
  async track(count, metadata = {}) {
    const inputs = Array.from({ length: count }, (_, i) => ({ name: 'api_call', externalCustomerId: 'ada', metadata: { i, ...metadata } }));
    return (await M.buffer.trackMany(inputs)).map((e) => e.externalId);
  },
  flush: () => M.buffer.flush(),
  text: (id) => document.getElementById(id)?.textContent ?? null,
};
window.M = M;
