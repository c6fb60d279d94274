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
import type { EventStore, ListFilters, StoredEvent } from './state.js';

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

/**
 * Polar's rate limit (rate_limit.py, asgi-ratelimit): fixed windows per organization, shared by all
 * its tokens; a token's first request (before its identity is cached) counts in the
 * `pending_auth` group instead, keyed by the token.
 */
export interface RateLimit {
  /** Requests allowed per window, per organization (production 500, sandbox 100 a minute). */
  requests: number;
  /** Window length in milliseconds (Polar: 60 000). */
  window: number;
  /** Requests per window of a token whose identity is not cached yet (Polar: 60 a minute). Default 60. */
  pendingAuth?: number;
}

/** Polar's production and sandbox rules for `^/v1` (rate_limit.py). */
export const POLAR_RATE_LIMITS = {
  production: { requests: 500, window: 60_000, pendingAuth: 60 },
  sandbox: { requests: 100, window: 60_000, pendingAuth: 60 },
} as const satisfies Record<string, RateLimit>;

/** Who a request authenticates as (auth/middlewares.py's `get_auth_subject`). */
type Subject =
  | { kind: 'organization'; token: string | undefined }
  | { kind: 'customer'; customerId: string; token: string }
  | { kind: 'anonymous' }
  | { kind: 'invalid'; token: string };

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
  /** Fixed windows by rate-limit key: start (real ms) and requests counted. */
  rateWindows: Map<string, { start: number; count: number }>;
  /** Tokens whose identity the rate limiter has cached (after their first authenticated request): key and expiry. */
  rateIdentities: Map<string, { key: string; expires: number }>;
  /** Organization tokens; empty: any bearer (or none) acts for the organization. */
  tokens: string[];
  /** The organization token's scopes; undefined: all. */
  scopes: string[] | undefined;
  /** `'organization'`: organization tokens (organization_id refused on events); `'user'`: a personal token (organization_id required). */
  subject: 'organization' | 'user';
  /** Register unknown customer_id / member_id on ingest instead of answering 422. */
  registerUnknown: boolean;
  maxBodyBytes: number;
  latencyMs: number;
  clockOffsetMs: number;
  online: boolean;
  faults: Fault[];
  requests: RecordedRequest[];
  requestSeq: number;
  /** Polar's CORS answers to pages on other origins (no `Date` or `Retry-After` exposed); false: none. */
  cors: boolean;
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
  return auth !== undefined && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() || undefined : undefined;
}

/** Who the request is (Polar's AuthSubjectMiddleware, which runs before routing). */
function authenticate(rt: MockRuntime, req: IncomingMessage): Subject {
  const token = bearer(req);
  if (token === undefined) return rt.tokens.length === 0 ? { kind: 'organization', token } : { kind: 'anonymous' };
  if (rt.meters.isSessionToken(token)) {
    const customerId = rt.meters.sessionCustomer(token);
    return customerId === undefined ? { kind: 'invalid', token } : { kind: 'customer', customerId, token };
  }
  if (rt.tokens.length === 0 || rt.tokens.includes(token)) return { kind: 'organization', token };
  return { kind: 'invalid', token };
}

const INVALID_TOKEN = 'The access token provided is expired, revoked, malformed, or invalid for other reasons.';

/** authlib's `InvalidTokenError` as Polar's OAuth2 error handler answers it. */
function invalidToken(): Answer {
  return {
    status: 401,
    body: { error: 'invalid_token', error_description: INVALID_TOKEN },
    headers: {
      'WWW-Authenticate': `Bearer realm="polar", error="invalid_token", error_description="${INVALID_TOKEN}"`,
      'Cache-Control': 'no-store',
      Pragma: 'no-cache',
    },
  };
}

/** Polar's `Unauthorized` (no subject the endpoint accepts). */
function unauthorized(): Answer {
  return { status: 401, body: { error: 'Unauthorized', detail: 'Unauthorized' }, headers: { 'WWW-Authenticate': 'Bearer realm="polar"' } };
}

/** authlib's `InsufficientScopeError`, Polar's subclass. */
function insufficientScope(scope: string): Answer {
  const description = 'The request requires higher privileges than provided by the access token.';
  return {
    status: 403,
    body: { error: 'insufficient_scope', error_description: description },
    headers: { 'WWW-Authenticate': `Bearer realm="polar", error="insufficient_scope", error_description="${description}", scope="${scope}"` },
  };
}

/** The scope each route of the organization API needs (auth.py of each module). */
const ROUTE_SCOPES: Partial<Record<RequestKind, string[]>> = {
  ingest: ['events:write'],
  list: ['events:read', 'events:write'],
  get: ['events:read', 'events:write'],
  meters: ['meters:read', 'meters:write'],
  'customer-session': ['customer_sessions:write'],
};

/**
 * Polar's rate limiter (asgi-ratelimit, fixed windows) runs after the body-size check and before
 * authentication. Its key is the identity cached for the token by an earlier authenticated request
 * (`organization:<id>`, shared by every token of the organization; `customer:<id>` for a session);
 * a token not cached yet counts in the `pending_auth` group, by the token. The 429 has an empty
 * body and `Retry-After` of the whole window, however much of it is left.
 */
function rateLimited(rt: MockRuntime, req: IncomingMessage, path: string): Answer | undefined {
  const limit = rt.rateLimit;
  if (!limit || !path.startsWith('/v1')) return undefined;
  const token = bearer(req);
  const now = Date.now();
  let key: string;
  let allowed = limit.requests;
  const cached = token === undefined ? undefined : rt.rateIdentities.get(token);
  if (token === undefined) key = rt.tokens.length === 0 ? `organization:${rt.store.organizationId}` : 'ip:127.0.0.1';
  else if (cached && cached.expires > now) key = cached.key;
  else {
    key = `token:${token}`;
    allowed = limit.pendingAuth ?? 60;
  }
  let w = rt.rateWindows.get(key);
  if (!w || now - w.start >= limit.window) {
    w = { start: now, count: 0 };
    rt.rateWindows.set(key, w);
  }
  w.count++;
  if (w.count <= allowed) return undefined;
  return { status: 429, body: '', headers: { 'Retry-After': String(Math.ceil(limit.window / 1000)), 'Content-Type': '' } };
}

/** After an authenticated request, the rate limiter knows the token's identity for 300 s. */
function cacheIdentity(rt: MockRuntime, subject: Subject): void {
  if (subject.kind === 'organization' && subject.token !== undefined) {
    rt.rateIdentities.set(subject.token, { key: `organization:${rt.store.organizationId}`, expires: Date.now() + 300_000 });
  } else if (subject.kind === 'customer') {
    rt.rateIdentities.set(subject.token, { key: `customer:${subject.customerId}`, expires: Date.now() + 300_000 });
  }
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
  if (errors.length > 0) return schemaError(errors);
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

/** A 422 of the request's schema (FastAPI's `RequestValidationError`). */
function schemaError(detail: ValidationErrorItem[]): Answer {
  return { status: 422, body: { error: 'RequestValidationError', detail } };
}

/** A 422 raised by a service after the schema passed (Polar's `PolarRequestValidationError`). */
function serviceError(detail: Omit<ValidationErrorItem, 'ctx'>[]): Answer {
  return { status: 422, body: { error: 'PolarRequestValidationError', detail } };
}

function createCustomerSession(rt: MockRuntime, body: unknown): Answer {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return schemaError([
      { type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body },
    ]);
  }
  const b = body as Record<string, unknown>;
  const cid = b['customer_id'];
  const ext = b['external_customer_id'] ?? b['customer_external_id'];
  const returnUrl = typeof b['return_url'] === 'string' ? b['return_url'] : null;
  const memberId = typeof b['member_id'] === 'string' ? b['member_id'] : undefined;
  const externalMemberId = typeof b['external_member_id'] === 'string' ? b['external_member_id'] : undefined;
  const open = (customer: NonNullable<ReturnType<MeterState['resolveCustomer']>>): Answer => {
    if (!rt.meters.memberModel) return { status: 201, body: rt.meters.createSession(customer, returnUrl) };
    // customer_session/service.py: with the member model, a member session (polar_mst_).
    const resolved = rt.meters.resolveMember(customer, memberId, externalMemberId);
    if (!('member' in resolved)) return serviceError([{ type: 'value_error', ...resolved }]);
    return { status: 201, body: rt.meters.createSession(customer, returnUrl, resolved.member) };
  };
  // The union's first member wins when it validates (customer_id), as in the ingest body.
  if (typeof cid === 'string' && isUuid(cid)) {
    const customer = rt.meters.resolveCustomer({ customerId: cid }, false);
    if (!customer) return serviceError([{ loc: ['body', 'customer_id'], msg: 'Customer does not exist.', type: 'value_error', input: cid }]);
    return open(customer);
  }
  if (typeof ext === 'string') {
    const customer = rt.meters.resolveCustomer({ externalCustomerId: ext }, false);
    if (!customer) return serviceError([{ loc: ['body', 'external_customer_id'], msg: 'Customer does not exist.', type: 'value_error', input: ext }]);
    return open(customer);
  }
  const detail: ValidationErrorItem[] = [
    cid === undefined
      ? { type: 'missing', loc: ['body', SESSION_MEMBERS[0], 'customer_id'], msg: 'Field required', input: body }
      : { type: 'uuid_parsing', loc: ['body', SESSION_MEMBERS[0], 'customer_id'], msg: 'Input should be a valid UUID', input: cid },
    ext === undefined
      ? { type: 'missing', loc: ['body', SESSION_MEMBERS[1], 'external_customer_id'], msg: 'Field required', input: body }
      : { type: 'string_type', loc: ['body', SESSION_MEMBERS[1], 'external_customer_id'], msg: 'Input should be a valid string', input: ext },
  ];
  return schemaError(detail);
}

function portalMeters(rt: MockRuntime, customerId: string, query: Record<string, string | string[]>): Answer {
  const errors: ValidationErrorItem[] = [];
  const { page, limit } = pageParams(query, errors);
  if (errors.length > 0) return schemaError(errors);
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

/**
 * event/service.py's `ingest` checks, once the schema passed: per event, organization_id (refused
 * with an organization token, required with a user's), then customer_id and member_id, which must
 * name the organization's customers and members. The first failure of an event is its error.
 */
function checkReferences(rt: MockRuntime, valid: ValidEvent[]): Omit<ValidationErrorItem, 'ctx'>[] {
  const errors: Omit<ValidationErrorItem, 'ctx'>[] = [];
  for (const e of valid) {
    const at = (field: string): (string | number)[] => ['body', 'events', e.index, field];
    if (rt.subject === 'organization' && e.organizationId !== null) {
      errors.push({
        type: 'organization_token',
        msg: 'Setting organization_id is disallowed when using an organization token.',
        loc: at('organization_id'),
        input: e.organizationId,
      });
      continue;
    }
    if (rt.subject === 'user' && e.organizationId === null) {
      errors.push({ type: 'missing', msg: 'organization_id is required.', loc: at('organization_id'), input: null });
      continue;
    }
    if (rt.subject === 'user' && e.organizationId !== rt.store.organizationId) {
      errors.push({ type: 'organization_id', msg: 'Organization not found.', loc: at('organization_id'), input: e.organizationId });
      continue;
    }
    if (e.customerId !== null && !rt.store.customerById(e.customerId)) {
      if (!rt.registerUnknown) {
        errors.push({ type: 'customer_id', msg: 'Customer not found.', loc: at('customer_id'), input: e.customerId });
        continue;
      }
      rt.store.addCustomer({ id: e.customerId });
    }
    if (e.memberId !== null && !rt.store.memberById(e.memberId)) {
      if (!rt.registerUnknown) {
        errors.push({ type: 'member_id', msg: 'Member not found.', loc: at('member_id'), input: e.memberId });
        continue;
      }
      rt.store.addMember({ id: e.memberId, customer_id: e.customerId! });
    }
  }
  return errors;
}

/** The customer meter jobs Polar's `event.ingested` task enqueues: customers of events whose chain is complete. */
export function enqueueMeterJobs(rt: MockRuntime, events: readonly StoredEvent[]): void {
  const now = Date.now();
  const customers = new Set<string>();
  for (const e of events) {
    if (!rt.store.isComplete(e)) continue;
    const c = rt.store.customerOf(e);
    if (c && c.deleted_at === null) customers.add(c.id);
  }
  for (const id of customers) rt.meters.enqueue(id, now);
}

function ingest(rt: MockRuntime, parsed: unknown, record: RecordedRequest): Answer {
  const nowMicros = serverNow(rt) * 1000;
  const check = validateIngestBody(parsed, nowMicros);
  if (!check.ok) return schemaError(check.errors);
  const errors: ValidationErrorItem[] = [];
  const valid: ValidEvent[] = [];
  for (const c of check.events) {
    if (c.ok) valid.push(c.event);
    else errors.push(...c.errors);
  }
  if (errors.length > 0) return schemaError(sortErrors(errors));
  const batch = (parsed as { events: unknown[] }).events;
  const references = checkReferences(rt, valid);
  if (references.length > 0) return serviceError(references);
  if (rt.orphans === 'rejected') {
    const parents = rt.store.checkParents(batch, valid);
    if (parents.length > 0) return serviceError(parents);
  }
  const outcome = rt.store.commit(valid, nowMicros, rt.listingLag > 0 ? Date.now() + rt.listingLag : 0);
  if (outcome.kind === 'server-error') return detail(500, 'Internal Server Error');
  enqueueMeterJobs(rt, [...outcome.stored, ...outcome.linked]);
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
  if (errors.length > 0) return schemaError(errors);
  const { items, total, maxPage } = rt.store.list(filters);
  return { status: 200, body: { items, pagination: { total_count: total, max_page: maxPage } } };
}

/** Whether FastAPI (>= 0.132, strict_content_type) parses the body as JSON: `application/json` or `+json`. */
function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const type = value.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/** The body of a JSON route as FastAPI reads it: a 422 when it is missing, not JSON, or not typed as JSON. */
function jsonBody(req: IncomingMessage, record: RecordedRequest, raw: string): Answer | undefined {
  if (raw === '') return schemaError([{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }]);
  if (!isJsonContentType(req.headers['content-type'])) {
    return schemaError([
      { type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: raw },
    ]);
  }
  if (typeof record.body === 'string') {
    let error = 'JSON decode error';
    let pos = 0;
    try {
      JSON.parse(raw);
    } catch (e) {
      error = (e as Error).message;
      pos = Number(/position (\d+)/.exec(error)?.[1] ?? 0);
    }
    return schemaError([{ type: 'json_invalid', loc: ['body', pos], msg: 'JSON decode error', input: {}, ctx: { error } }]);
  }
  return undefined;
}

/**
 * Answers a request in the order of Polar's middleware stack: body size, rate limit, the token
 * (an unknown one is refused on any path), routing, the endpoint's subject and scopes, the body.
 */
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
  const subject = authenticate(rt, req);
  if (subject.kind === 'invalid') return invalidToken();
  cacheIdentity(rt, subject);
  const allowed = allowedMethods(path);
  if (allowed === null) return detail(404, 'Not Found');
  if (allowed !== method) return { ...detail(405, 'Method Not Allowed'), headers: { Allow: allowed } };
  // The customer portal takes customer and member sessions only.
  if (record.kind === 'portal-meters') return subject.kind === 'customer' ? portalMeters(rt, subject.customerId, record.query) : unauthorized();
  if (subject.kind !== 'organization') return unauthorized();
  const needs = ROUTE_SCOPES[record.kind];
  if (needs && rt.scopes !== undefined && !needs.some((s) => rt.scopes!.includes(s))) return insufficientScope(needs.join(' '));
  if (record.kind === 'ingest') return jsonBody(req, record, raw) ?? ingest(rt, record.body, record);
  if (record.kind === 'list') return list(rt, record.query);
  if (record.kind === 'meters') return listMeters(rt, record.query);
  if (record.kind === 'customer-session') return jsonBody(req, record, raw) ?? createCustomerSession(rt, record.body);
  // GET /v1/events/{id}
  const id = path.replace(/^\/v1\/events\//, '').replace(/\/$/, '');
  if (!isUuid(id)) return schemaError([{ type: 'uuid_parsing', loc: ['path', 'id'], msg: 'Input should be a valid UUID', input: id }]);
  const e = rt.store.getById(id);
  return e && rt.store.isListed(e, Date.now())
    ? { status: 200, body: rt.store.serialise(e) }
    : { status: 404, body: { error: 'ResourceNotFound', detail: 'Not found' } };
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
  if (rt.cors && req.headers.origin !== undefined) {
    // Polar's CORSMatcherMiddleware (outermost): a preflight is answered there, never routed or recorded.
    if (method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) return preflight(req, res);
    setCorsHeaders(res);
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

/** The request headers Polar's API CORS config allows: its own and Starlette's safelisted ones. */
const CORS_ALLOWED_HEADERS = ['Accept', 'Accept-Language', 'Authorization', 'Content-Language', 'Content-Type', 'Polar-Version'];

/**
 * Polar's API CORS config (app.py `configure_cors`): any origin, no credentials, and only
 * `Polar-Version` exposed, so a page on another origin cannot read `Date` or `Retry-After`.
 */
function setCorsHeaders(res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', 'Polar-Version');
}

/** Starlette's `CORSMiddleware.preflight_response` with Polar's API config. */
function preflight(req: IncomingMessage, res: ServerResponse): void {
  const asked = req.headers['access-control-request-headers'];
  const allowed = new Set(CORS_ALLOWED_HEADERS.map((h) => h.toLowerCase()));
  const refused = typeof asked === 'string' && asked.split(',').some((h) => h.trim() !== '' && !allowed.has(h.trim().toLowerCase()));
  const body = refused ? 'Disallowed CORS headers' : 'OK';
  res.writeHead(refused ? 400 : 200, {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT',
    'Access-Control-Max-Age': '600',
    'Access-Control-Allow-Headers': CORS_ALLOWED_HEADERS.join(', '),
    Vary: 'Origin',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

function faultAnswer(fault: Fault): Answer {
  const status = fault.status ?? 503;
  const headers: Record<string, string> = {};
  if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
  Object.assign(headers, fault.headers ?? {});
  return { status, body: fault.body !== undefined ? fault.body : { detail: STATUS_CODES[status] ?? 'Error' }, headers };
}
