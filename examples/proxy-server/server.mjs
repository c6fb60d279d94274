// A small backend that lets browsers report usage without ever holding the Polar token.
//
//   browser: createEventBuffer({ transport: httpTransport({ baseUrl: '/usage' }) })
//        │  POST /usage/v1/events/ingest   (same path shape and JSON as Polar's API)
//        ▼  GET  /usage/v1/events/         (reconcile)
//   this server: who is signed in? → every event's customer := that user → Polar, with the
//        │       organization token from the environment (official @polar-sh/sdk for ingest)
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

/**
 * Creates the proxy (not listening yet: call `.listen()`).
 *
 * @param {object} options
 * @param {Polar} options.polar The official SDK client, made with an organization access token.
 * @param {(request: import('node:http').IncomingMessage) => string | null | Promise<string | null>} options.authenticate
 *   The signed-in user's id in your system (sent to Polar as `external_customer_id`), or null.
 * @param {string} [options.prefix] Where the routes live, e.g. "/usage" (browser: `baseUrl: '/usage'`). Default "".
 * @param {string} [options.serverURL] Polar's API, for the reconcile route. Default "https://api.polar.sh".
 * @param {string} [options.accessToken] The organization token, for the reconcile route.
 * @param {typeof fetch} [options.fetch] For the reconcile route. Default globalThis.fetch.
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
  return createServer(async (request, response) => {
    try {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const route = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null;
      if (route !== '/v1/events/ingest' && route !== '/v1/events/' && route !== '/v1/events') {
        return send(response, 404, { detail: 'Not Found' });
      }
      const user = await authenticate(request);
      if (!user) return send(response, 401, { detail: 'Sign in to report usage.' });

      if (route === '/v1/events/ingest') {
        if (request.method !== 'POST') return send(response, 405, { detail: 'Method Not Allowed' });
        return await ingest(request, response, { polar, user, log });
      }
      if (request.method !== 'GET') return send(response, 405, { detail: 'Method Not Allowed' });
      return await list(url, response, { serverURL, accessToken, fetch, user, log });
    } catch (error) {
      log('Polar could not be reached.', error);
      if (!response.headersSent) send(response, 502, { detail: 'The usage proxy could not reach Polar.' });
      else response.destroy();
    }
  });
}

/** POST /v1/events/ingest: force the customer, validate, forward with the SDK, answer like Polar. */
async function ingest(request, response, { polar, user, log }) {
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

  // The one rule that matters: a browser reports usage for the signed-in user only. Whatever
  // customer it names (forged or stale after a sign-out) is replaced; organization_id is the
  // token's own organization.
  const forced = body.events.map((event) => {
    const { customer_id: _customer, external_customer_id: _external, organization_id: _org, ...rest } =
      event && typeof event === 'object' ? event : {};
    return { ...rest, external_customer_id: user };
  });

  // Refuse bad events here, in Polar's 422 shape, so the browser dead-letters exactly those
  // (loc[2] is the index) and the SDK never sees input it would reject without an index.
  const detail = [];
  forced.forEach((event, index) => {
    const [error] = validate(event, EventCreateStruct);
    for (const failure of error?.failures() ?? []) {
      detail.push({ type: 'value_error', loc: ['body', 'events', index, ...failure.path], msg: failure.message, input: failure.value ?? null });
    }
  });
  if (detail.length > 0) return send(response, 422, { detail });

  try {
    const result = await polar.events.ingest({ events: forced.map(toSdkEvent) });
    return send(response, 200, { inserted: result.inserted, duplicates: result.duplicates });
  } catch (error) {
    return relayPolarError(response, error, log);
  }
}

/** GET /v1/events/: the user's own events only, as Polar's wire JSON (what reconcile parses). */
async function list(url, response, { serverURL, accessToken, fetch, user, log }) {
  // The SDK turns list items into camelCase objects with Dates; the buffer reads Polar's wire
  // JSON, so this route forwards the request itself (same token, same path).
  const query = new URLSearchParams(url.search);
  query.delete('customer_id');
  query.delete('organization_id');
  query.set('external_customer_id', user);
  const upstream = await fetch(`${serverURL.replace(/\/$/, '')}/v1/events/?${query}`, {
    headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
  });
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
 * Reads `Authorization: Bearer <session>` or the `session` cookie and looks the user up.
 * @param {Map<string, string>} sessions session token → the user's id in your system
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
