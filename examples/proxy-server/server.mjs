// A small backend that lets browsers report usage without ever holding the Polar token.
//
//   browser: createEventBuffer({ transport: httpTransport({ baseUrl: '/usage' }) })
//        │  POST /usage/v1/events/ingest   (same path shape and JSON as Polar's API)
//        ▼  GET  /usage/v1/events/         (reconcile)
//   this server: who is signed in? → every event's customer := that user, its member checked,
//        │       its ids scoped to that customer → Polar, with the organization token from the
//        │       environment (official @polar-sh/sdk for ingest)
//        ▼
//   Polar (or, in the example's test, polar-event-buffer/mock-server)
//
// Run it:  POLAR_ACCESS_TOKEN=polar_oat_... node examples/proxy-server/server.mjs
//          (POLAR_SERVER_URL=https://sandbox-api.polar.sh for the sandbox; PORT, default 8787)
//
// Answers keep Polar's status codes and bodies (422 with the index of each bad event, 429/503
// with Retry-After), because the browser's buffer decides from them what to retry and what to
// dead-letter. Only plain node:http; swap in your framework's router and session middleware.
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { Polar } from '@polar-sh/sdk';
import { EventCreateStruct } from 'polar-event-buffer';
import { validate } from 'superstruct';

/** Largest request body accepted from a browser, in bytes (Polar answers 413 beyond its own limit). */
const MAX_BODY_BYTES = 1_000_000;

/** The list filters reconcile uses; others (parent_id, depth, aggregate_fields, ...) are not passed on. */
const LIST_PARAMS = ['name', 'start_timestamp', 'end_timestamp', 'sorting', 'page', 'limit'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An id the browser chose, as Polar stores it: `<customer>:<id>`, the customer URI-encoded so it
 * holds no `:`. Two customers' ids never meet, and the same id from the same customer is the same
 * key every time (a resent batch is still counted once).
 */
const scoped = (customer, id) => `${encodeURIComponent(customer)}:${id}`;

/**
 * Creates the proxy (not listening yet: call `.listen()`).
 *
 * @param {object} options
 * @param {Polar} options.polar The official SDK client, made with an organization access token.
 * @param {(request: import('node:http').IncomingMessage) => Session | null | Promise<Session | null>} options.authenticate
 *   Who is signed in, or null. A string is the user's id in your system (sent to Polar as
 *   `external_customer_id`); in a team product, `{ customer, members }`: the team's id and the
 *   external member ids this session may report for (the first is set on events that name none).
 * @param {string} [options.prefix] Where the routes live, e.g. "/usage" (browser: `baseUrl: '/usage'`). Default "".
 * @param {string} [options.serverURL] Polar's API, for the list route and parent checks. Default "https://api.polar.sh".
 * @param {string} [options.accessToken] The organization token, for the list route and parent checks.
 * @param {typeof fetch} [options.fetch] For the list route and parent checks. Default globalThis.fetch.
 * @param {(message: string, error?: unknown) => void} [options.log] Where failures are reported. Default console.error.
 */
export function createProxyServer({
  polar,
  authenticate,
  prefix = '',
  serverURL = 'https://api.polar.sh',
  accessToken,
  fetch = globalThis.fetch,
  log = (message, error) => console.error(`[usage proxy] ${message}`, error ?? ''),
}) {
  const polarFetch = (path) =>
    fetch(`${serverURL.replace(/\/$/, '')}${path}`, {
      headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
    });
  return createServer(async (request, response) => {
    try {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const route = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null;
      if (route !== '/v1/events/ingest' && route !== '/v1/events/' && route !== '/v1/events') {
        return send(response, 404, { detail: 'Not Found' });
      }
      const who = await authenticate(request);
      if (!who) return send(response, 401, { detail: 'Sign in to report usage.' });
      const session = typeof who === 'string' ? { customer: who, members: [] } : { customer: who.customer, members: who.members ?? [] };

      if (route === '/v1/events/ingest') {
        if (request.method !== 'POST') return send(response, 405, { detail: 'Method Not Allowed' });
        return await ingest(request, response, { polar, polarFetch, session, log });
      }
      if (request.method !== 'GET') return send(response, 405, { detail: 'Method Not Allowed' });
      return await list(url, response, { polarFetch, session, log });
    } catch (error) {
      log('Polar could not be reached.', error);
      if (!response.headersSent) send(response, 502, { detail: 'The usage proxy could not reach Polar.' });
      else response.destroy();
    }
  });
}

/** POST /v1/events/ingest: force the customer, check the member and the parent, scope the ids, forward. */
async function ingest(request, response, { polar, polarFetch, session, log }) {
  const raw = await readBody(request);
  if (raw === null) return send(response, 413, { detail: `Request body larger than ${MAX_BODY_BYTES} bytes.` });
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return send(response, 422, { detail: [{ type: 'json_invalid', loc: ['body'], msg: 'JSON decode error', input: null }] });
  }
  if (!body || !Array.isArray(body.events)) {
    return send(response, 422, { detail: [{ type: 'missing', loc: ['body', 'events'], msg: 'Field required', input: body }] });
  }
  const { customer, members } = session;

  // Refusals use Polar's 422 shape, so the browser dead-letters exactly those events (loc[2] is
  // the index) and resends the others; the SDK never sees input it would reject without an index.
  const detail = [];
  const refuse = (index, path, msg, input) => detail.push({ type: 'value_error', loc: ['body', 'events', index, ...path], msg, input: input ?? null });

  const events = body.events.map((event, index) => {
    // A browser reports usage for the signed-in user only: whatever customer it names (forged, or
    // stale after a sign-out) is replaced; organization_id is the token's own organization.
    const {
      customer_id: _c,
      external_customer_id: _e,
      organization_id: _o,
      member_id,
      external_member_id,
      ...rest
    } = event && typeof event === 'object' ? event : {};
    const forced = { ...rest, external_customer_id: customer };
    const [error] = validate(forced, EventCreateStruct);
    for (const failure of error?.failures() ?? []) refuse(index, failure.path, failure.message, failure.value);

    // Members are checked, never overwritten: a wrong one (forged, or a teammate's event left on a
    // shared device) must not be charged to whoever is signed in now; refused, it stays a dead letter.
    if (member_id != null) refuse(index, ['member_id'], 'Send external_member_id: member_id cannot be checked here.', member_id);
    if (external_member_id != null && !members.includes(external_member_id)) {
      refuse(index, ['external_member_id'], 'Member not found.', external_member_id);
    }
    const member = external_member_id ?? members[0];
    return member === undefined ? forced : { ...forced, external_member_id: member };
  });
  if (detail.length > 0) return send(response, 422, { detail });

  // Polar links parent_id to any event of the organization with that external_id or Polar id. An
  // id the browser chose is scoped like external_id; a UUID that is not one of this batch's ids may
  // be a Polar event id (the browser saw it in a list): it must be this customer's event.
  const batchIds = new Set(events.map((event) => event.external_id));
  const found = new Map();
  for (const id of new Set(events.map((event) => event.parent_id))) {
    if (typeof id !== 'string' || !UUID.test(id) || batchIds.has(id)) continue;
    const upstream = await polarFetch(`/v1/events/${id}`);
    if (upstream.ok) found.set(id, await upstream.json());
    else if (upstream.status === 404)
      await upstream.body?.cancel(); // not a Polar event: an external_id
    else return relay(response, upstream, log);
  }
  const forwarded = events.map((event, index) => {
    const parent = event.parent_id === undefined ? undefined : found.get(event.parent_id);
    if (parent && parent.external_customer_id !== customer && parent.customer?.external_id !== customer) {
      refuse(index, ['parent_id'], 'Parent event not found.', event.parent_id);
    }
    return {
      ...event,
      ...(event.external_id !== undefined && { external_id: scoped(customer, event.external_id) }),
      ...(event.parent_id !== undefined && { parent_id: parent ? event.parent_id : scoped(customer, event.parent_id) }),
    };
  });
  if (detail.length > 0) return send(response, 422, { detail });

  try {
    const result = await polar.events.ingest({ events: forwarded.map(toSdkEvent) });
    return send(response, 200, { inserted: result.inserted, duplicates: result.duplicates });
  } catch (error) {
    return relayPolarError(response, error, log);
  }
}

/** GET /v1/events/: the user's own events only, as Polar's wire JSON (what reconcile parses). */
async function list(url, response, { polarFetch, session, log }) {
  // The SDK turns list items into camelCase objects with Dates; the buffer reads Polar's wire
  // JSON, so this route forwards the request itself (same token, same path).
  const query = new URLSearchParams();
  for (const key of LIST_PARAMS) for (const value of url.searchParams.getAll(key)) query.append(key, value);
  query.set('external_customer_id', session.customer);
  return relay(response, await polarFetch(`/v1/events/?${query}`), log);
}

/** Polar's answer → the browser: same status, body and Retry-After (401/403 are our token's problem). */
async function relay(response, upstream, log) {
  const text = await upstream.text();
  if (upstream.status === 401 || upstream.status === 403) return misconfigured(response, upstream.status, log);
  const headers = { 'Content-Type': upstream.headers.get('content-type') ?? 'application/json' };
  const retryAfter = upstream.headers.get('retry-after');
  if (retryAfter) headers['Retry-After'] = retryAfter;
  response.writeHead(upstream.status, headers).end(text);
}

/** Polar's wire EventCreate (snake_case) → the SDK's input (camelCase, Dates). */
function toSdkEvent(event) {
  return {
    name: event.name,
    externalCustomerId: event.external_customer_id,
    ...(event.external_member_id !== undefined && { externalMemberId: event.external_member_id }),
    ...(event.timestamp !== undefined && { timestamp: new Date(event.timestamp) }),
    ...(event.external_id !== undefined && { externalId: event.external_id }),
    ...(event.parent_id !== undefined && { parentId: event.parent_id }),
    ...(event.metadata !== undefined && { metadata: toSdkMetadata(event.metadata) }),
  };
}

/** The SDK types `_llm` in camelCase and writes it back in snake_case; everything else passes as is. */
function toSdkMetadata(metadata) {
  const llm = metadata._llm;
  if (!llm || typeof llm !== 'object') return metadata;
  // The SDK's LLMMetadata (0.49) has no `cost`; an `_llm.cost` is dropped on the way to Polar.
  const { input_tokens, cached_input_tokens, output_tokens, total_tokens, vendor, model, prompt, response } = llm;
  return {
    ...metadata,
    _llm: {
      vendor,
      model,
      ...(prompt !== undefined && { prompt }),
      ...(response !== undefined && { response }),
      inputTokens: input_tokens,
      ...(cached_input_tokens !== undefined && { cachedInputTokens: cached_input_tokens }),
      outputTokens: output_tokens,
      totalTokens: total_tokens,
    },
  };
}

/** An SDK error → the same status, body and Retry-After for the browser (its buffer acts on them). */
function relayPolarError(response, error, log) {
  const status = error?.statusCode;
  if (typeof status !== 'number') throw error; // network failure, timeout: 502 above, which the buffer retries
  if (status === 401 || status === 403) return misconfigured(response, status, log);
  const headers = { 'Content-Type': error.contentType || 'application/json' };
  const retryAfter = error.headers?.get?.('retry-after');
  if (retryAfter) headers['Retry-After'] = retryAfter;
  response.writeHead(status, headers).end(error.body ?? '');
}

/** Polar refused OUR token: not the browser's fault. 502 makes its buffer keep the events and retry. */
function misconfigured(response, status, log) {
  log(`Polar answered ${status}: check POLAR_ACCESS_TOKEN (an organization token with events:write).`);
  return send(response, 502, { detail: 'The usage proxy is misconfigured.' });
}

function send(response, status, body) {
  response.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

/** The body as text, or null when it is larger than MAX_BODY_BYTES. */
async function readBody(request) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// ---- a toy session store: replace with your own authentication -------------------------------

/**
 * @typedef {string | { customer: string, members?: string[] }} Session
 *   The user's id in your system, or a team's id and the external member ids the user may report for.
 */

/**
 * Reads `Authorization: Bearer <session>` or the `session` cookie and looks the user up.
 * @param {Map<string, Session>} sessions session token → who is signed in
 */
export function sessionAuthenticator(sessions) {
  return (request) => {
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    const cookie = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.cookie ?? '')?.[1];
    const token = bearer ?? (cookie && decodeURIComponent(cookie));
    return (token && sessions.get(token)) ?? null;
  };
}

// ---- node examples/proxy-server/server.mjs -----------------------------------------------------

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const accessToken = process.env.POLAR_ACCESS_TOKEN;
  if (!accessToken) {
    console.error('Set POLAR_ACCESS_TOKEN to an organization access token (Polar dashboard → Settings → Developers).');
    process.exit(1);
  }
  const serverURL = process.env.POLAR_SERVER_URL ?? 'https://api.polar.sh';
  // The browser's buffer already retries with backoff and honours Retry-After: no second layer here.
  const polar = new Polar({ accessToken, serverURL, retryConfig: { strategy: 'none' } });
  const sessions = new Map([['demo-session', 'user_42']]); // your login flow fills this
  const port = Number(process.env.PORT ?? 8787);
  createProxyServer({ polar, authenticate: sessionAuthenticator(sessions), prefix: '/usage', serverURL, accessToken }).listen(port, () => {
    console.log(`Usage proxy on http://localhost:${port}/usage → ${serverURL}`);
  });
}
