/**
 * `createRelay`: the app's endpoint for its devices. Routes, authentication, per-user limits and
 * the reads; ingest goes through the rules (rules.ts) and the coalescer (coalescer.ts).
 *
 * @module
 */
import { Coalescer, HeldIds, type Answer } from './coalescer.js';
import { PerUserWindows, TokenBucket } from './limits.js';
import { polarClient, type PolarAnswer } from './polar.js';
import { belongsTo, customerOf, isUuid, rewrite, scopedId, type Customer, type DetailItem } from './rules.js';
import type { Relay, RelayEvent, RelayOptions, RelayRoute, RelayStats } from './types.js';

/** Events in one device request (the buffer's largest batch); more is a 413, which the buffer splits. */
const MAX_DEVICE_EVENTS = 1000;
/** The list filters reconcile uses; others (parent_id, aggregate_fields, ...) are not passed on. */
const LIST_PARAMS = ['name', 'start_timestamp', 'end_timestamp', 'sorting', 'page', 'limit'];
/** Polar events whose owner was looked up, so a parent named again costs no second request. */
const OWNER_CACHE = 10_000;

const DEFAULTS = { window: 1000, budget: 300, maxBodyBytes: 1024 * 1024, maxWait: 5000, requests: 120, events: 6000, reads: 30 };

const defaultClock = {
  now: () => Date.now(),
  setTimeout: (callback: () => void, ms: number): unknown => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle: unknown) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

const optionError = (name: string, expected: string, value: unknown) =>
  new TypeError(`Expected \`${name}\` to be ${expected}, but received ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);

function positive(name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw optionError(name, allowZero ? 'a number >= 0' : 'a number > 0', value);
  }
  return value;
}

const json = (status: number, body: unknown, retryAfterMs?: number): Response => {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (retryAfterMs !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  return new Response(JSON.stringify(body), { status, headers });
};

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Creates the relay: one Web-standard handler for every device of the app.
 * @example
 * const relay = createRelay({
 *   accessToken: process.env.POLAR_ACCESS_TOKEN!,
 *   authenticate: async (request) => {
 *     const user = await userFromCookie(request.headers.get('cookie'));
 *     return user ? { externalCustomerId: user.id } : null;
 *   },
 *   prefix: '/usage',
 * });
 * export const POST = (request: Request) => relay.fetch(request); // Next.js route handler
 */
export function createRelay(options: RelayOptions): Relay {
  const o = options ?? ({} as RelayOptions);
  if (typeof o.accessToken !== 'string' || !o.accessToken) throw new TypeError('Expected `accessToken` to be an organization access token');
  if (typeof o.authenticate !== 'function') throw optionError('authenticate', 'a function (request) => session | null', o.authenticate);
  const doFetch = o.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw optionError('fetch', 'a fetch function', o.fetch);
  const prefix = (o.prefix ?? '').replace(/\/+$/, '');
  if (typeof prefix !== 'string' || (prefix && !prefix.startsWith('/'))) throw optionError('prefix', 'a path such as "/usage"', o.prefix);
  const baseUrl = (o.baseUrl ?? 'https://api.polar.sh').replace(/\/+$/, '');
  const window = positive('window', o.window, DEFAULTS.window, true);
  const budget = positive('budget', o.budget, DEFAULTS.budget);
  const maxBodyBytes = positive('maxBodyBytes', o.maxBodyBytes, DEFAULTS.maxBodyBytes);
  const maxWait = positive('maxWait', o.maxWait, DEFAULTS.maxWait, true);
  const limits = {
    requests: positive('perUser.requests', o.perUser?.requests, DEFAULTS.requests),
    events: positive('perUser.events', o.perUser?.events, DEFAULTS.events),
    reads: positive('perUser.reads', o.perUser?.reads, DEFAULTS.reads),
  };
  const clock = o.clock ?? defaultClock;
  const emit = (event: RelayEvent) => {
    try {
      o.onEvent?.(event);
    } catch {
      // A logging hook must not break the relay.
    }
  };

  const bucket = new TokenBucket(budget, clock.now());
  // Reads leave a fifth of the bucket to ingest, which carries every device's events.
  const readReserve = Math.floor(bucket.capacity / 5);
  const polar = polarClient({ baseUrl, accessToken: o.accessToken, fetch: doFetch, clock, bucket, emit });
  const held = new HeldIds(200_000);
  const coalescer = new Coalescer({ window, maxWait, clock, bucket, polar, held });
  const perUser = new PerUserWindows();
  const owners = new Map<string, Record<string, unknown>>();
  const answers: Record<string, number> = {};
  let answered = 0;
  let closed: Promise<void> | undefined;

  const limited = (retryAfterMs: number, what: string) => json(429, { detail: `Too many ${what} for this user; try again later.` }, retryAfterMs);

  /** Polar's answer to a read, passed on (a refused token is ours to fix, not the device's: 502). */
  function passOn(answer: PolarAnswer): Response {
    if (answer.status === 0 || answer.status === 401 || answer.status === 403) {
      return json(502, { detail: answer.status === 0 ? 'The relay could not reach Polar.' : 'The relay is misconfigured.' });
    }
    const headers: Record<string, string> = { 'Content-Type': answer.contentType ?? 'application/json' };
    if (answer.retryAfterMs !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(answer.retryAfterMs / 1000)));
    return new Response(answer.status === 204 ? null : answer.text, { status: answer.status, headers });
  }

  /** A token for a read, or the 429 a device gets while the budget is spent. */
  function readToken(): Response | null {
    const now = clock.now();
    if (bucket.take(now, readReserve)) return null;
    return json(429, { detail: 'The relay has no Polar budget left now.' }, bucket.waitMs(now, readReserve));
  }

  async function body(request: Request): Promise<string | Response> {
    const declared = Number(request.headers.get('content-length'));
    const tooLarge = () => json(413, { detail: `Request body larger than ${maxBodyBytes} bytes.` });
    if (declared > maxBodyBytes) {
      await request.body?.cancel().catch(() => undefined);
      return tooLarge();
    }
    if (!request.body) return '';
    const reader = request.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let size = 0;
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      if ((size += chunk.value.byteLength) > maxBodyBytes) {
        await reader.cancel().catch(() => undefined);
        return tooLarge();
      }
      text += decoder.decode(chunk.value, { stream: true });
    }
    return text + decoder.decode();
  }

  /**
   * Whose Polar event `id` is: the event (200), `null` when Polar has none (404 or not a UUID it
   * takes), or the Response a device gets when Polar cannot say now.
   */
  async function polarEvent(id: string): Promise<Record<string, unknown> | null | Response> {
    const cached = owners.get(id);
    if (cached) return cached;
    const refused = readToken();
    if (refused) return refused;
    const answer = await polar.call('get', 'GET', `/v1/events/${id}`);
    if (answer.status === 404 || answer.status === 422) return null;
    if (answer.status !== 200) return passOn(answer);
    let event: unknown;
    try {
      event = JSON.parse(answer.text);
    } catch {
      return json(502, { detail: 'Polar answered something that is not JSON.' });
    }
    if (!isObject(event)) return null;
    owners.set(id, event);
    if (owners.size > OWNER_CACHE) owners.delete(owners.keys().next().value!);
    return event;
  }

  async function ingest(request: Request, customer: Customer): Promise<{ response: Response; events?: number }> {
    const text = await body(request);
    if (text instanceof Response) return { response: text };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { response: json(422, { detail: [{ type: 'json_invalid', loc: ['body'], msg: 'JSON decode error', input: null }] }) };
    }
    if (!isObject(parsed) || !Array.isArray(parsed['events'])) {
      return { response: json(422, { detail: [{ type: 'missing', loc: ['body', 'events'], msg: 'Field required', input: parsed ?? null }] }) };
    }
    const raw = parsed['events'] as unknown[];
    if (raw.length > MAX_DEVICE_EVENTS) return { response: json(413, { detail: `More than ${MAX_DEVICE_EVENTS} events in one request.` }) };
    const allowed = perUser.hit(customer.key, 'events', raw.length, limits.events, clock.now());
    if (!allowed.ok) return { response: limited(allowed.retryAfterMs, 'events') };

    const rewritten = await Promise.all(raw.map((event, index) => rewrite(event, index, customer)));
    const detail: DetailItem[] = rewritten.flatMap((r) => r.refusals);
    // A parent is first one of the customer's own events (by its id, scoped like external_id);
    // only an id that names none of them may be a Polar event id, and then it must be this customer's.
    const earlier = new Set<string>();
    for (const [index, r] of rewritten.entries()) {
      if (r.parent !== undefined && r.refusals.length === 0) {
        const scoped = await scopedId(customer.key, r.parent);
        let parent = scoped;
        if (!earlier.has(scoped) && !held.has(scoped) && isUuid(r.parent)) {
          const found = await polarEvent(r.parent.toLowerCase());
          if (found instanceof Response) return { response: found };
          if (found && belongsTo(found, customer)) parent = r.parent.toLowerCase();
          else if (found) detail.push({ type: 'value_error', loc: ['body', 'events', index, 'parent_id'], msg: 'Parent event not found.', input: r.parent });
        }
        r.event['parent_id'] = parent;
      }
      const id = r.event['external_id'];
      if (typeof id === 'string') earlier.add(id);
    }
    if (detail.length > 0) {
      // Polar's way: a 422 stores nothing of the request and names each bad event by its index.
      detail.sort((a, b) => (a.loc[2] as number) - (b.loc[2] as number));
      return { response: json(422, { detail }), events: raw.length };
    }

    const share = { json: [] as string[], ids: [] as (string | null)[], parents: [] as (string | null)[], own: [] as number[], known: 0, bytes: 0 };
    const seen = new Set<string>();
    for (const [index, r] of rewritten.entries()) {
      const id = typeof r.event['external_id'] === 'string' ? (r.event['external_id'] as string) : null;
      // Polar counts an id it holds, or one repeated in the request, as a duplicate: so does the relay.
      if (id !== null && (held.has(id) || seen.has(id))) {
        share.known++;
        continue;
      }
      if (id !== null) seen.add(id);
      const text = JSON.stringify(r.event);
      share.json.push(text);
      share.ids.push(id);
      share.parents.push(typeof r.event['parent_id'] === 'string' ? (r.event['parent_id'] as string) : null);
      share.own.push(index);
      share.bytes += text.length * 3 + 1;
    }
    if (share.json.length === 0) return { response: json(200, { inserted: 0, duplicates: share.known }), events: raw.length };
    const answer: Answer = await coalescer.submit(share);
    return { response: json(answer.status, answer.body, answer.retryAfterMs), events: raw.length };
  }

  async function list(url: URL, customer: Customer): Promise<Response> {
    const allowed = perUser.hit(customer.key, 'reads', 1, limits.reads, clock.now());
    if (!allowed.ok) return limited(allowed.retryAfterMs, 'reads');
    const query = new URLSearchParams();
    for (const key of LIST_PARAMS) for (const value of url.searchParams.getAll(key)) query.append(key, value);
    // Whatever customer the device asked for, it reads the session's.
    query.set(customer.field, customer.id);
    return readToken() ?? passOn(await polar.call('list', 'GET', `/v1/events/?${query}`));
  }

  async function customerSession(request: Request, customer: Customer): Promise<Response> {
    const allowed = perUser.hit(customer.key, 'reads', 1, limits.reads, clock.now());
    if (!allowed.ok) return limited(allowed.retryAfterMs, 'reads');
    const text = await body(request);
    if (text instanceof Response) return text;
    let asked: unknown;
    try {
      asked = text.trim() ? JSON.parse(text) : {};
    } catch {
      asked = {};
    }
    const returnUrl = isObject(asked) && typeof asked['return_url'] === 'string' ? { return_url: asked['return_url'] } : {};
    const refused = readToken();
    if (refused) return refused;
    return passOn(await polar.call('customer-session', 'POST', '/v1/customer-sessions/', JSON.stringify({ [customer.field]: customer.id, ...returnUrl })));
  }

  function routeOf(method: string, path: string): RelayRoute | null {
    if (method === 'POST' && /^\/v1\/events\/ingest\/?$/.test(path)) return 'ingest';
    if (method === 'GET' && /^\/v1\/events\/?$/.test(path)) return 'list';
    if (method === 'POST' && /^\/v1\/customer-sessions\/?$/.test(path)) return 'customer-session';
    return null;
  }

  async function serve(request: Request): Promise<{ response: Response; route: RelayRoute | null; events?: number }> {
    const url = new URL(request.url);
    const path = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : null;
    const route = path === null ? null : routeOf(request.method, path);
    if (route === null) return { response: json(404, { detail: 'Not Found' }), route };
    if (closed) return { response: json(503, { detail: 'The relay is shutting down.' }, 1000), route };
    let session: unknown;
    try {
      session = await o.authenticate(request);
    } catch (error) {
      emit({ type: 'error', message: 'authenticate threw', cause: error });
      return { response: json(500, { detail: 'The relay could not authenticate this request.' }), route };
    }
    const customer = session ? customerOf(session as never) : null;
    if (!customer) return { response: json(401, { detail: 'Sign in to report usage.' }), route };
    const allowed = perUser.hit(customer.key, 'requests', 1, limits.requests, clock.now());
    if (!allowed.ok) return { response: limited(allowed.retryAfterMs, 'requests'), route };
    if (route === 'ingest') return { ...(await ingest(request, customer)), route };
    if (route === 'list') return { response: await list(url, customer), route };
    return { response: await customerSession(request, customer), route };
  }

  return {
    async fetch(request: Request): Promise<Response> {
      let out: { response: Response; route: RelayRoute | null; events?: number };
      try {
        out = await serve(request);
      } catch (error) {
        emit({ type: 'error', message: 'the relay failed on a request', cause: error });
        out = { response: json(500, { detail: 'The relay failed.' }), route: null };
      }
      const status = out.response.status;
      answered++;
      answers[status] = (answers[status] ?? 0) + 1;
      emit({ type: 'answer', route: out.route, status, ...(out.events !== undefined ? { events: out.events } : {}) });
      return out.response;
    },
    stats(): RelayStats {
      const c = polar.counters;
      return {
        polarRequests: c.requests,
        polarRequestsPerMinute: polar.perMinute(),
        eventsPerPolarRequest: c.ingestRequests ? c.events / c.ingestRequests : 0,
        rateLimited: c.rateLimited,
        waiting: coalescer.waiting,
        answered,
        answers: { ...answers },
        polarIngestRequests: c.ingestRequests,
        polarReads: c.reads,
        events: c.events,
      };
    },
    close(): Promise<void> {
      closed ??= coalescer.close();
      return closed;
    },
  };
}
