import { createEventBuffer, httpTransport } from 'polar-event-buffer';
import { createMirror } from 'polar-event-buffer/mirror';
import { customerPortalTransport, watchMeterBalance } from 'polar-event-buffer/meters';

const { api, meters } = await (await fetch('/config.json')).json();
const $ = (id) => document.getElementById(id);
const log = (line) => {
  $('log').textContent = `${new Date().toLocaleTimeString()}  ${line}\n${$('log').textContent}`;
};

const buffer = createEventBuffer({
  transport: httpTransport({ baseUrl: api, timeout: 3000 }),
  dbName: 'polar-event-buffer-demo',
  flushInterval: 3000,
  // Short retries, so the demo reacts quickly when the server comes back.
  retry: { retries: 1, minTimeout: 200, maxTimeout: 1000 },
});
// The read path: the server's copy of the events, merged with what is still on this device.
const mirror = createMirror(buffer);

let n = 0;
async function track(count) {
  const customer = $('customer').value.trim() || 'user_42';
  const inputs = Array.from({ length: count }, () => ({
    name: 'api_call',
    externalCustomerId: customer,
    metadata: { tokens: 10 + (n++ % 90), route: '/v1/chat' },
  }));
  const events = await buffer.trackMany(inputs);
  log(`tracked ${events.length} event(s), committed to IndexedDB`);
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function render() {
  const stats = await buffer.stats();
  $('stats').replaceChildren(
    ...Object.entries(stats).map(([k, v]) => {
      const div = document.createElement('div');
      div.className = 'stat';
      div.innerHTML = `<b>${v}</b>${k}`;
      return div;
    }),
  );
  const all = await mirror.query({});
  const queue = all
    .filter((e) => e.status !== 'confirmed' && !e.userEvent)
    .slice(-15)
    .reverse();
  $('queue-count').textContent = `(${stats.pending + stats.sending} waiting)`;
  $('queue').tBodies[0].replaceChildren(
    ...queue.map((e) => {
      const tr = document.createElement('tr');
      tr.append(cell(e.name), cell(e.externalCustomerId ?? e.customerId ?? ''), cell(e.status, `status s-${e.status}`), cell(String(e.attempts)));
      return tr;
    }),
  );
  const history = all
    .filter((e) => e.status === 'confirmed' || e.userEvent)
    .slice(-15)
    .reverse();
  $('history').tBodies[0].replaceChildren(
    ...history.map((e) => {
      const tr = document.createElement('tr');
      tr.append(
        cell(e.timestamp.toLocaleTimeString()),
        cell(e.name),
        cell(e.status, `status s-${e.status}`),
        cell((e.serverId ?? e.userEvent?.id ?? '').slice(0, 8)),
      );
      return tr;
    }),
  );
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? 0) + 1);
}

// The usage bar: the customer's credits from Polar's customer portal, lowered at once by each
// tracked event the server has not received yet, so it keeps moving while the server is down.
const sessions = new Map();
/** A customer session token from our backend (it holds the organization token); one per customer. */
function sessionToken(customer) {
  if (!sessions.has(customer)) {
    const token = fetch(`/session?customer=${encodeURIComponent(customer)}`, { method: 'POST' }).then(async (r) => {
      if (!r.ok) throw new Error(`no customer session (${r.status})`);
      return (await r.json()).token;
    });
    token.catch(() => sessions.delete(customer)); // ask again next time
    sessions.set(customer, token);
  }
  return sessions.get(customer);
}

let stopBalance = () => {};
function watchCredits() {
  stopBalance();
  const customer = $('customer').value.trim() || 'user_42';
  const portal = customerPortalTransport({ baseUrl: api, token: () => sessionToken(customer), meters });
  stopBalance = watchMeterBalance(
    mirror,
    portal,
    meters[0].id,
    {
      externalCustomerId: customer,
      // The portal could not be read (server down): the last answer stays, lowered by the local events.
      onError: (error) => log(`credits not refreshed: ${error.message}`),
    },
    ({ credited, balance, uncounted }) => {
      $('credits-left').textContent = String(balance);
      $('credits-detail').textContent = `of ${credited} ${meters[0].name}${uncounted ? `, ${uncounted} not counted by Polar yet` : ''}`;
      $('credits-bar').style.width = `${credited > 0 ? Math.max(0, Math.min(100, (balance / credited) * 100)) : 0}%`;
      $('credits').dataset.balance = String(balance);
    },
  );
}

let rendering = Promise.resolve();
const rerender = () => (rendering = rendering.then(render).catch((e) => log(`render failed: ${e.message}`)));
buffer.on('change', rerender);
buffer.on(
  'flush',
  (r) => r.requests > 0 && log(`flush: sent ${r.sent} (duplicates ${r.duplicates}), ${r.remaining} waiting${r.stoppedBy ? `, stopped: ${r.stoppedBy}` : ''}`),
);
buffer.on('error', (e) => log(`error: ${e.message}`));
mirror.on('reconcile', (r) => log(`reconcile: fetched ${r.fetched}, matched ${r.matched}, added ${r.added}`));

$('track').onclick = () => track(1);
$('track10').onclick = () => track(10);
$('flush').onclick = () => buffer.flush().then(rerender);
$('reconcile').onclick = () =>
  mirror.reconcile({ externalCustomerId: $('customer').value.trim() || 'user_42' }).then(rerender, (e) => log(`reconcile failed: ${e.message}`));
$('customer').onchange = watchCredits;
$('offline').onchange = async (event) => {
  await fetch(`/control/server?online=${!event.target.checked}`, { method: 'POST' });
  log(event.target.checked ? 'server down: events keep queueing' : 'server back: the next flush sends them');
};

window.demo = { buffer, mirror, track, render: rerender };
watchCredits();
await rerender();
document.body.dataset.ready = 'true';
