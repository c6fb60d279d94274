/**
 * The mock server's HTTP handler: routing, auth, body limits, Polar's answers, the fault script,
 * and the request log.
 *
 * @module
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { isUuid, parseDatetime, validateIngestBody } from './rules.js';
import type { ValidEvent, ValidationErrorItem } from './rules.js';
import type { MeterState } from './meters.js';
import type { EventStore, ListFilters } from './state.js';

/** Which requests a fault applies to. */
export type FaultMatch = 'ingest' | 'list' | 'any';

/**
 * One step of the fault script. Faults are consumed in order: each request takes the first
 * fault in the script whose `match` fits it, and that fault's `times` counts down by one.
 */
export interface Fault {
  /** `'ingest'` = `POST /v1/events/ingest` (default), `'list'` = `GET /v1/events/`, `'any'` = every request. */
  match?: FaultMatch;
  /** How many matching requests this fault applies to (default 1). */
  times?: number;
  /** Answer with this status instead of the normal answer (503 when only `retryAfter` is given). */
  status?: number;
  /** `Retry-After` header: seconds, or an HTTP date string. */
  retryAfter?: number | string;
  /** Body to send instead of the default `{"detail": "<reason>"}`; a string is sent raw. */
  body?: unknown;
  /** Extra response headers (e.g. `{"Content-Type": "text/html"}`). */
  headers?: Record<string, string>;
  /** Destroy the socket without answering. */
  drop?: boolean;
  /**
   * Wait this long first. If the client went away meanwhile, the request is abandoned
   * unprocessed (unless `afterProcessing`, which processes before waiting).
   */
  delayMs?: number;
  /**
   * Process the request normally first (store the events), then drop the connection (`drop`),
   * or answer with `status`/`body` instead of the real answer: the client never learns they landed.
   */
  afterProcessing?: boolean;
}

/** Kind of a recorded request. */
export type RequestKind = 'ingest' | 'list' | 'get' | 'meters' | 'customer-session' | 'portal-meters' | 'other';

/** A fixed-window request budget per bearer token (Polar: 500 a minute for an organization token). */
export interface RateLimit {
  /** Requests allowed per window. */
  requests: number;
  /** Window length in milliseconds. */
  window: number;
}

/** One request the mock server received. */
export interface RecordedRequest {
  /** Sequence number, from 0. */
  seq: number;
  kind: RequestKind;
  method: string;
  /** Path without the query string. */
  path: string;
  /** Query parameters; repeated ones become arrays. */
  query: Record<string, string | string[]>;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, the raw string when it is not JSON, `undefined` when empty or too large. */
  body: unknown;
  /** Status answered, or `null` when the connection was dropped or the client went away. */
  status: number | null;
  /** When the request arrived (real time). */
  at: Date;
  /** The fault applied to it, if any. */
  fault?: Fault;
  /** For answered ingests: what was counted. */
  result?: { inserted: number; duplicates: number };
}

/** Mutable settings and state shared by the handler and the server object. */
export interface MockRuntime {
  store: EventStore;
  meters: MeterState;
  /** Milliseconds before an ingested event shows in lists (Polar lists from an asynchronous copy). */
  listingLag: number;
  rateLimit: RateLimit | undefined;
  /** `'rejected'`: 422 for an unknown parent_id (servers before April 2026); `'hidden'`: stored, unlisted until the parent arrives. */
  orphans: 'rejected' | 'hidden';
  /** Per-token fixed windows: start (real ms) and requests counted. */
  rateWindows: Map<string, { start: number; count: number }>;
  token: string | undefined;
  maxBodyBytes: number;
  latencyMs: number;
  clockOffsetMs: number;
  online: boolean;
  faults: Fault[];
  requests: RecordedRequest[];
  requestSeq: number;
  /** Answer CORS preflights and add Access-Control-Allow-* headers (for pages on another origin). */
  cors?: boolean;
  /** Called after each request is finished (answered, dropped or abandoned). */
  onRequestDone: (r: RecordedRequest) => void;
  /** Sleeps that `close()` can cut short. */
  sleep: (ms: number) => Promise<void>;
}

/** The server clock in milliseconds. */
export function serverNow(rt: MockRuntime): number {
  return Date.now() + rt.clockOffsetMs;
}

/** Routes: path pattern, method, kind. */
const ROUTES: [RegExp, string, RequestKind][] = [
  [/^\/v1\/events\/ingest\/?$/, 'POST', 'ingest'],
  [/^\/v1\/events\/?$/, 'GET', 'list'],
  [/^\/v1\/events\/[^/]+\/?$/, 'GET', 'get'],
  [/^\/v1\/meters\/?$/, 'GET', 'meters'],
  [/^\/v1\/customer-sessions\/?$/, 'POST', 'customer-session'],
  [/^\/v1\/customer-portal\/meters\/?$/, 'GET', 'portal-meters'],
];

function kindOf(method: string, path: string): RequestKind {
  const r = ROUTES.find(([re]) => re.test(path));
  return r && r[1] === method ? r[2] : 'other';
}

function allowedMethods(path: string): string | null {
  return ROUTES.find(([re]) => re.test(path))?.[1] ?? null;
}

function bearer(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  return auth !== undefined && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : undefined;
}

/**
 * Polar's rate limiter (asgi-ratelimit, fixed windows keyed by token) answers 429 with an empty
 * body and `Retry-After` in seconds; it runs after the body-size check and before authentication.
 */
function rateLimited(rt: MockRuntime, req: IncomingMessage, path: string): Answer | undefined {
  const limit = rt.rateLimit;
  // Polar's catch-all rule covers `^/v1`.
  if (!limit || !path.startsWith('/v1')) return undefined;
  const key = bearer(req) ?? 'anonymous';
  const now = Date.now();
  let w = rt.rateWindows.get(key);
  if (!w || now - w.start >= limit.window) {
    w = { start: now, count: 0 };
    rt.rateWindows.set(key, w);
  }
  w.count++;
  if (w.count <= limit.requests) return undefined;
  const retryAfter = Math.max(1, Math.ceil((w.start + limit.window - now) / 1000));
  return { status: 429, body: '', headers: { 'Retry-After': String(retryAfter), 'Content-Type': '' } };
}

function pageParams(query: Record<string, string | string[]>, errors: ValidationErrorItem[]): { page: number; limit: number } {
  const positiveInt = (k: string, dflt: number): number => {
    const raw = query[k];
    const v = Array.isArray(raw) ? raw[0] : raw;
    if (v === undefined) return dflt;
    if (!/^\s*[+-]?\d+\s*$/.test(v)) {
      errors.push({ type: 'int_parsing', loc: ['query', k], msg: 'Input should be a valid integer, unable to parse string as an integer', input: v });
      return dflt;
    }
    const n = Number(v);
    if (n <= 0) {
      errors.push({ type: 'greater_than', loc: ['query', k], msg: 'Input should be greater than 0', input: v, ctx: { gt: 0 } });
      return dflt;
    }
    return n;
  };
  return { page: positiveInt('page', 1), limit: Math.min(100, positiveInt('limit', 10)) };
}

/** Polar's `ListResource`: one page of items and `{ total_count, max_page }`. */
function paginate<T>(all: T[], page: number, limit: number): Answer {
  const start = (page - 1) * limit;
  return { status: 200, body: { items: all.slice(start, start + limit), pagination: { total_count: all.length, max_page: Math.ceil(all.length / limit) } } };
}

function listMeters(rt: MockRuntime, query: Record<string, string | string[]>): Answer {
  const errors: ValidationErrorItem[] = [];
  const { page, limit } = pageParams(query, errors);
  if (errors.length > 0) return { status: 422, body: { detail: errors } };
  const q = typeof query['query'] === 'string' ? query['query'].toLowerCase() : undefined;
  const archived = query['is_archived'];
  const meters = rt.meters
    .list()
    .filter((m) => q === undefined || m.name.toLowerCase().includes(q))
    .filter((m) => archived === undefined || (archived === 'true') === (m.archived_at !== null))
    // Polar's default sorting is by name.
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return paginate(meters, page, limit);
}

const SESSION_MEMBERS = ['CustomerSessionCustomerIDCreate', 'CustomerSessionCustomerExternalIDCreate'] as const;

function createCustomerSession(rt: MockRuntime, body: unknown): Answer {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return {
      status: 422,
      body: {
        detail: [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }],
      },
    };
  }
  const b = body as Record<string, unknown>;
  const cid = b['customer_id'];
  const ext = b['external_customer_id'] ?? b['customer_external_id'];
  const returnUrl = typeof b['return_url'] === 'string' ? b['return_url'] : null;
  // The union's first member wins when it validates (customer_id), as in the ingest body.
  if (typeof cid === 'string' && isUuid(cid)) {
    const customer = rt.meters.resolveCustomer({ customerId: cid }, false);
    if (!customer)
      return { status: 422, body: { detail: [{ loc: ['body', 'customer_id'], msg: 'Customer does not exist.', type: 'value_error', input: cid }] } };
    return { status: 201, body: rt.meters.createSession(customer, returnUrl) };
  }
  if (typeof ext === 'string') {
    const customer = rt.meters.resolveCustomer({ externalCustomerId: ext }, false);
    if (!customer)
      return { status: 422, body: { detail: [{ loc: ['body', 'external_customer_id'], msg: 'Customer does not exist.', type: 'value_error', input: ext }] } };
    return { status: 201, body: rt.meters.createSession(customer, returnUrl) };
  }
  const detail: ValidationErrorItem[] = [
    cid === undefined
      ? { type: 'missing', loc: ['body', SESSION_MEMBERS[0], 'customer_id'], msg: 'Field required', input: body }
      : { type: 'uuid_parsing', loc: ['body', SESSION_MEMBERS[0], 'customer_id'], msg: 'Input should be a valid UUID', input: cid },
    ext === undefined
      ? { type: 'missing', loc: ['body', SESSION_MEMBERS[1], 'external_customer_id'], msg: 'Field required', input: body }
      : { type: 'string_type', loc: ['body', SESSION_MEMBERS[1], 'external_customer_id'], msg: 'Input should be a valid string', input: ext },
  ];
  return { status: 422, body: { detail } };
}

function portalMeters(rt: MockRuntime, req: IncomingMessage, query: Record<string, string | string[]>): Answer {
  const token = bearer(req);
  const customerId = token === undefined ? undefined : rt.meters.sessionCustomer(token);
  if (customerId === undefined) {
    return { ...detail(401, token === undefined ? 'Not authenticated' : 'Invalid or expired token'), headers: { 'WWW-Authenticate': 'Bearer' } };
  }
  const errors: ValidationErrorItem[] = [];
  const { page, limit } = pageParams(query, errors);
  if (errors.length > 0) return { status: 422, body: { detail: errors } };
  const raw = query['meter_id'];
  const meterIds = raw === undefined ? undefined : (Array.isArray(raw) ? raw : [raw]).map((m) => m.toLowerCase());
  const q = typeof query['query'] === 'string' ? query['query'].toLowerCase() : undefined;
  const items = rt.meters
    .customerMeters(customerId, Date.now())
    .filter((m) => meterIds === undefined || meterIds.includes(m.meter_id))
    .filter((m) => q === undefined || m.meter.name.toLowerCase().includes(q));
  return paginate(items, page, limit);
}

function takeFault(rt: MockRuntime, kind: RequestKind): Fault | undefined {
  const i = rt.faults.findIndex((f) => {
    const m = f.match ?? 'ingest';
    return m === 'any' || m === kind;
  });
  if (i < 0) return undefined;
  const fault = rt.faults[i]!;
  const left = (fault.times ?? 1) - 1;
  if (left <= 0) rt.faults.splice(i, 1);
  else rt.faults[i] = { ...fault, times: left };
  return fault;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function detail(status: number, text?: string): Answer {
  return { status, body: { detail: text ?? STATUS_CODES[status] ?? 'Error' } };
}

function send(rt: MockRuntime, res: ServerResponse, answer: Answer): void {
  if (res.destroyed || res.writableEnded) return;
  const payload = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? null);
  const headers: Record<string, string> = {
    Date: new Date(serverNow(rt)).toUTCString(),
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(payload)),
  };
  for (const [k, v] of Object.entries(answer.headers ?? {})) {
    const existing = Object.keys(headers).find((h) => h.toLowerCase() === k.toLowerCase());
    if (existing) delete headers[existing];
    // An empty value removes the header (Polar's 429 has no Content-Type).
    if (v !== '') headers[k] = v;
  }
  res.writeHead(answer.status, headers);
  res.end(payload);
}

function readBody(req: IncomingMessage, max: number): Promise<{ raw: string; tooLarge: boolean } | null> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    let tooLarge = Number.isFinite(declared) && declared > max;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => resolve({ raw: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge }));
    req.on('error', () => resolve(null));
    req.on('aborted', () => resolve(null));
  });
}

function parseQuery(url: URL): Record<string, string | string[]> {
  const q: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = q[k];
    if (prev === undefined) q[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else q[k] = [prev, v];
  }
  return q;
}

function sortErrors(errors: ValidationErrorItem[]): ValidationErrorItem[] {
  const idx = (e: ValidationErrorItem): number => (typeof e.loc[2] === 'number' ? e.loc[2] : -1);
  return errors
    .map((e, i) => ({ e, i }))
    .sort((a, b) => idx(a.e) - idx(b.e) || a.i - b.i)
    .map((x) => x.e);
}

function ingest(rt: MockRuntime, parsed: unknown, record: RecordedRequest): Answer {
  const nowMicros = serverNow(rt) * 1000;
  const check = validateIngestBody(parsed, nowMicros);
  if (!check.ok) return { status: 422, body: { detail: check.errors } };
  const errors: ValidationErrorItem[] = [];
  const valid: ValidEvent[] = [];
  for (const c of check.events) {
    if (c.ok) valid.push(c.event);
    else errors.push(...c.errors);
  }
  const batch = (parsed as { events: unknown[] }).events;
  if (rt.orphans === 'rejected') errors.push(...rt.store.checkParents(batch, valid));
  if (errors.length > 0) return { status: 422, body: { detail: sortErrors(errors) } };
  const outcome = rt.store.commit(valid, nowMicros, rt.listingLag > 0 ? Date.now() + rt.listingLag : 0);
  if (outcome.kind === 'server-error') return detail(500, 'Internal Server Error');
  record.result = { inserted: outcome.inserted, duplicates: outcome.duplicates };
  return { status: 200, body: { inserted: outcome.inserted, duplicates: outcome.duplicates } };
}

function list(rt: MockRuntime, query: Record<string, string | string[]>): Answer {
  const errors: ValidationErrorItem[] = [];
  const all = (k: string): string[] | undefined => {
    const v = query[k];
    return v === undefined ? undefined : Array.isArray(v) ? v : [v];
  };
  const one = (k: string): string | undefined => all(k)?.[0];
  const positiveInt = (k: string, dflt: number): number => {
    const v = one(k);
    if (v === undefined) return dflt;
    if (!/^\s*[+-]?\d+\s*$/.test(v)) {
      errors.push({ type: 'int_parsing', loc: ['query', k], msg: 'Input should be a valid integer, unable to parse string as an integer', input: v });
      return dflt;
    }
    const n = Number(v);
    if (n <= 0) {
      errors.push({ type: 'greater_than', loc: ['query', k], msg: 'Input should be greater than 0', input: v, ctx: { gt: 0 } });
      return dflt;
    }
    return n;
  };
  const time = (k: string): number | undefined => {
    const v = one(k);
    if (v === undefined) return undefined;
    const p = parseDatetime(v);
    if (!p.ok) {
      errors.push({ type: p.type, loc: ['query', k], msg: p.msg, input: v });
      return undefined;
    }
    return p.micros;
  };

  const filters: ListFilters = {
    listedAt: Date.now(),
    ascending: false,
    page: positiveInt('page', 1),
    limit: Math.min(100, positiveInt('limit', 10)),
  };
  const customerIds = all('customer_id');
  if (customerIds) {
    customerIds.forEach((c) => {
      if (!isUuid(c)) errors.push({ type: 'uuid_parsing', loc: ['query', 'customer_id'], msg: 'Input should be a valid UUID', input: c });
    });
    filters.customerIds = customerIds.map((c) => c.toLowerCase());
  }
  const ext = all('external_customer_id');
  if (ext) filters.externalCustomerIds = ext;
  const names = all('name');
  if (names) filters.names = names;
  const sources = all('source');
  if (sources) filters.sources = sources;
  const parent = one('parent_id');
  if (parent !== undefined) filters.parentId = parent.toLowerCase();
  const start = time('start_timestamp');
  if (start !== undefined) filters.startMicros = start;
  const end = time('end_timestamp');
  if (end !== undefined) filters.endMicros = end;
  const sorting = all('sorting');
  if (sorting) {
    for (const s of sorting) {
      if (s !== 'timestamp' && s !== '-timestamp') {
        errors.push({
          type: 'enum',
          loc: ['query', 'sorting'],
          msg: "Input should be 'timestamp' or '-timestamp'",
          input: s,
          ctx: { expected: "'timestamp' or '-timestamp'" },
        });
      }
    }
    filters.ascending = sorting[0] === 'timestamp';
  }
  if (errors.length > 0) return { status: 422, body: { detail: errors } };
  const { items, total, maxPage } = rt.store.list(filters);
  return { status: 200, body: { items, pagination: { total_count: total, max_page: maxPage } } };
}

function route(rt: MockRuntime, req: IncomingMessage, path: string, record: RecordedRequest, raw: string, tooLarge: boolean): Answer {
  const method = req.method ?? 'GET';
  if (req.headers['content-length'] === undefined && ['POST', 'PUT', 'PATCH'].includes(method)) {
    // Polar's MaxBodySizeMiddleware refuses a chunked body it cannot size up front.
    return { status: 411, body: { error: 'LengthRequired', detail: 'A Content-Length header is required.' } };
  }
  if (tooLarge) {
    // Polar's MaxBodySizeMiddleware answers before routing, in its own error shape.
    return {
      status: 413,
      body: { error: 'RequestBodyTooLarge', detail: `Request body exceeded the maximum allowed size of ${rt.maxBodyBytes} bytes.` },
    };
  }
  const limited = rateLimited(rt, req, path);
  if (limited) return limited;
  const allowed = allowedMethods(path);
  if (allowed === null) return detail(404, 'Not Found');
  if (allowed !== method) return { ...detail(405, 'Method Not Allowed'), headers: { Allow: allowed } };
  // The customer portal authenticates with a customer session token, not the organization token.
  if (record.kind === 'portal-meters') return portalMeters(rt, req, record.query);
  if (rt.token !== undefined) {
    const auth = req.headers.authorization;
    if (auth === undefined || !/^bearer\s+/i.test(auth)) {
      return { ...detail(401, 'Not authenticated'), headers: { 'WWW-Authenticate': 'Bearer' } };
    }
    if (auth.replace(/^bearer\s+/i, '').trim() !== rt.token) {
      return { ...detail(401, 'Invalid or expired token'), headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } };
    }
  }
  if (record.kind === 'ingest') {
    if (raw.trim() === '') {
      return { status: 422, body: { detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] } };
    }
    if (typeof record.body === 'string') {
      let error = 'JSON decode error';
      try {
        JSON.parse(raw);
      } catch (e) {
        error = (e as Error).message;
      }
      return { status: 422, body: { detail: [{ type: 'json_invalid', loc: ['body'], msg: 'JSON decode error', input: {}, ctx: { error } }] } };
    }
    return ingest(rt, record.body, record);
  }
  if (record.kind === 'list') return list(rt, record.query);
  if (record.kind === 'meters') return listMeters(rt, record.query);
  if (record.kind === 'customer-session') {
    if (typeof record.body === 'string' || raw.trim() === '') {
      return { status: 422, body: { detail: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] } };
    }
    return createCustomerSession(rt, record.body);
  }
  // GET /v1/events/{id}
  const id = path.replace(/^\/v1\/events\//, '').replace(/\/$/, '');
  if (!isUuid(id)) {
    return { status: 422, body: { detail: [{ type: 'uuid_parsing', loc: ['path', 'id'], msg: 'Input should be a valid UUID', input: id }] } };
  }
  const e = rt.store.getById(id);
  return e && rt.store.isListed(e, Date.now()) ? { status: 200, body: rt.store.serialise(e) } : detail(404, 'Not Found');
}

/** Builds the request listener for a mock server. */
export function createHandler(rt: MockRuntime): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(rt, req, res).catch((error: unknown) => {
      // A bug in the mock must not hang the client.
      send(rt, res, detail(500, `Mock server error: ${(error as Error)?.message ?? String(error)}`));
    });
  };
}

async function handle(rt: MockRuntime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!rt.online) {
    req.socket.destroy();
    return;
  }
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const method = req.method ?? 'GET';
  if (rt.cors) {
    setCorsHeaders(req, res);
    // A preflight is the browser's question, not a call to the API: answered, never recorded.
    if (method === 'OPTIONS') {
      res.writeHead(204, { 'Content-Length': '0' });
      res.end();
      return;
    }
  }
  const path = url.pathname;
  const record: RecordedRequest = {
    seq: rt.requestSeq++,
    kind: kindOf(method, path),
    method,
    path,
    query: parseQuery(url),
    headers: req.headers,
    body: undefined,
    status: null,
    at: new Date(),
  };
  rt.requests.push(record);
  const finish = (status: number | null): void => {
    record.status = status;
    rt.onRequestDone(record);
  };
  let clientGone = false;
  res.on('close', () => {
    if (!res.writableFinished) clientGone = true;
  });

  const body = await readBody(req, rt.maxBodyBytes);
  if (body === null) return finish(null);
  if (!body.tooLarge && body.raw.length > 0) {
    try {
      record.body = JSON.parse(body.raw);
    } catch {
      record.body = body.raw;
    }
  }
  const abandon = (): void => {
    req.socket.destroy();
    finish(null);
  };

  const fault = takeFault(rt, record.kind);
  if (fault) record.fault = fault;
  const gone = (): boolean => clientGone || req.socket.destroyed || !rt.online;

  if (fault?.afterProcessing) {
    const real = route(rt, req, path, record, body.raw, body.tooLarge);
    if (fault.delayMs) await rt.sleep(fault.delayMs);
    if (rt.latencyMs) await rt.sleep(rt.latencyMs);
    if (fault.drop || gone()) return abandon();
    const answer = fault.status !== undefined || fault.retryAfter !== undefined ? faultAnswer(fault) : real;
    send(rt, res, answer);
    return finish(answer.status);
  }

  if (fault?.delayMs) await rt.sleep(fault.delayMs);
  if (rt.latencyMs) await rt.sleep(rt.latencyMs);
  if (gone()) return abandon();
  if (fault?.drop) return abandon();
  const answer =
    fault && (fault.status !== undefined || fault.retryAfter !== undefined) ? faultAnswer(fault) : route(rt, req, path, record, body.raw, body.tooLarge);
  send(rt, res, answer);
  return finish(answer.status);
}

/** CORS headers for any origin (the mock binds 127.0.0.1 only); `Date` and `Retry-After` are exposed to scripts. */
function setCorsHeaders(req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  res.setHeader('Access-Control-Allow-Origin', origin ?? '*');
  if (origin) res.setHeader('Vary', 'Origin');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
  const asked = req.headers['access-control-request-headers'];
  res.setHeader('Access-Control-Allow-Headers', typeof asked === 'string' && asked ? asked : 'Content-Type, Authorization, Accept');
  res.setHeader('Access-Control-Expose-Headers', 'Date, Retry-After');
  res.setHeader('Access-Control-Max-Age', '600');
}

function faultAnswer(fault: Fault): Answer {
  const status = fault.status ?? 503;
  const headers: Record<string, string> = {};
  if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
  Object.assign(headers, fault.headers ?? {});
  return { status, body: fault.body !== undefined ? fault.body : { detail: STATUS_CODES[status] ?? 'Error' }, headers };
}
