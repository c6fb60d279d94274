/**
 * `polar-event-buffer/mock-server`: a scriptable in-process imitation of Polar's events API, for
 * demos, the library's own tests and users' integration tests. Node only.
 *
 * ```ts
 * import { startMockPolar } from 'polar-event-buffer/mock-server';
 * const polar = await startMockPolar({ token: 'polar_oat_test' });
 * polar.addFaults({ status: 503, retryAfter: 1 }, { drop: true, afterProcessing: true });
 * // ... point httpTransport({ baseUrl: polar.url }) at it ...
 * await polar.close();
 * ```
 *
 * @module
 */
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { POLAR_RATE_LIMITS, createHandler, enqueueMeterJobs, serverNow } from './handler.js';
import type { Fault, MockRuntime, RateLimit, RecordedRequest } from './handler.js';
import { MeterState, POLAR_METER_LAG } from './meters.js';
import type { CustomerRef, MeterLag, MockMeterInput, WireCustomerMeter, WireMeter } from './meters.js';
import { EventStore } from './state.js';
import type { MockCustomerInput, MockMemberInput, SeedEvent, WireCustomer, WireEvent, WireMember } from './state.js';

export type { Fault, FaultMatch, RateLimit, RecordedRequest, RequestKind } from './handler.js';
export { POLAR_RATE_LIMITS } from './handler.js';
export type { CustomerRef, MeterLag, MockMeterInput, WireCustomerMeter, WireCustomerSession, WireMeter } from './meters.js';
export { CUSTOMER_SESSION_TTL_MS, MEMBER_SESSION_TOKEN_PREFIX, METER_CREDITED, POLAR_METER_LAG } from './meters.js';
export type { MockCustomerInput, MockMemberInput, SeedEvent, WireCustomer, WireEvent, WireMember } from './state.js';
export type { ValidationErrorItem } from './rules.js';
export { usageQuantity } from './aggregate.js';

/** The organization id stored events carry when `organizationId` is not given. */
export const DEFAULT_ORGANIZATION_ID = '1d3a5c6e-0b7f-4a2e-9c41-5e8f7a6b9d20';

/** Options of {@link startMockPolar}. */
export interface MockPolarOptions {
  /** Port to listen on; default 0 = an ephemeral port. The server always binds 127.0.0.1. */
  port?: number;
  /**
   * The organization's access token(s). When set, a request without a bearer token is 401
   * `{"error": "Unauthorized"}` and one with another token 401 `{"error": "invalid_token", ...}`
   * (on any path, before routing, as Polar's auth middleware). All of them share the
   * organization's rate limit. Unset: any bearer (or none) acts for the organization.
   */
  token?: string | string[];
  /** The token's scopes (e.g. `['events:read']`); a route it lacks answers 403 `insufficient_scope`. Default: all. */
  scopes?: string[];
  /**
   * What the token is: `'organization'` (default; an event naming `organization_id` is a 422
   * `organization_token`), or `'user'` (a personal token: `organization_id` is required and must be
   * this organization's).
   */
  subject?: 'organization' | 'user';
  /**
   * An event whose `customer_id` or `member_id` names no known customer or member is a 422
   * ("Customer not found." / "Member not found.") as on Polar. True registers them instead, as if
   * the test had created them through Polar's API first. Default false.
   */
  registerUnknown?: boolean;
  /** Known members of customers (Polar's member model): what `member_id` on events must name. */
  members?: MockMemberInput[];
  /** The organization has Polar's member model on: customer sessions are member sessions (`polar_mst_` tokens). Default false. */
  memberModel?: boolean;
  /**
   * When the customer portal's meters catch up with new events: Polar recomputes them in a
   * debounced job, `min` ms after the customer's last event and at most `max` ms after the first
   * one waiting (default {@link POLAR_METER_LAG}: 15 s and 180 min), separately from `listingLag`.
   * A number sets `min`; `0` recomputes on every read.
   */
  meterLag?: number | Partial<MeterLag>;
  /**
   * How `GET /v1/events/` reads: `'tinybird'` (default, today's Polar): bounds and order in whole
   * milliseconds, events of one millisecond in a different order on every request;
   * `'postgres'`: servers that listed from Postgres, microsecond bounds and ties in arrival order.
   */
  listing?: 'tinybird' | 'postgres';
  /**
   * How timestamps are written: `'pydantic'` (default, today's Polar): `…07Z`, `…07.123000Z`;
   * `'isoformat'`: Python's `isoformat()`, `…07.000000+00:00`, as older servers did.
   */
  timestampFormat?: 'pydantic' | 'isoformat';
  /** Randomness for the order of same-millisecond list items (default `Math.random`), to make a test repeatable. */
  random?: () => number;
  /** Organization id of stored events; default {@link DEFAULT_ORGANIZATION_ID}. */
  organizationId?: string;
  /** Initial fault script (see {@link Fault}). */
  faults?: Fault[];
  /**
   * The server clock is `Date.now() + clockOffsetMs`: it drives the `Date` header, the
   * "timestamp must be in the past" rule and the timestamp of events sent without one.
   */
  clockOffsetMs?: number;
  /** Known customers, for `customer_id` / `external_customer_id` resolution and the `customer` field. */
  customers?: MockCustomerInput[];
  /** Largest accepted request body in bytes, default 10 MiB (Polar's `API_MAX_REQUEST_BODY_SIZE`); larger bodies get 413. */
  maxBodyBytes?: number;
  /**
   * Milliseconds before an ingested event shows in `GET /v1/events/` (and `/v1/events/{id}` and
   * customer meters), default 0. Polar lists events from an asynchronous copy; a child stays hidden
   * while its parent is.
   */
  listingLag?: number;
  /**
   * Polar's rate limit: `'production'` (500 requests a minute per organization), `'sandbox'` (100),
   * or your own budget; past it, 429 with an empty body and `Retry-After` of the whole window. Off
   * by default, as on a Polar server run locally (rate_limit.py has no rules outside production
   * and sandbox).
   */
  rateLimit?: RateLimit | 'production' | 'sandbox';
  /**
   * An event whose `parent_id` names no stored event: `'hidden'` (default, today's Polar, polar#11168):
   * accepted and counted as inserted, then unlisted (and `GET /v1/events/{id}` 404) until its
   * parent arrives and is linked; `'rejected'` answers 422 "Parent event not found." as Polar did
   * until April 2026.
   */
  orphans?: 'rejected' | 'hidden';
  /** Meters that `GET /v1/meters/` lists and customer meters are computed from. */
  meters?: MockMeterInput[];
  /** Delay every answer by this many milliseconds. */
  latencyMs?: number;
  /**
   * Polar's CORS answers to requests with an `Origin` (default true): preflights answered (never
   * recorded in `requests`), `Access-Control-Allow-Origin: *` on every answer and only
   * `Polar-Version` exposed, so a page on another origin cannot read `Date` or `Retry-After`.
   * False: no CORS headers at all.
   */
  cors?: boolean;
}

/** A stored event with the `external_id` it was ingested with (which Polar never returns). */
export interface StoredEventView {
  /** The event as `GET /v1/events/` returns it. */
  event: WireEvent;
  /** Its idempotency key, or `null`. */
  externalId: string | null;
}

/** A running mock Polar server. */
export interface MockPolarServer {
  /** `http://127.0.0.1:<port>`, usable as `httpTransport`'s `baseUrl`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Organization id of stored events. */
  readonly organizationId: string;
  /** Stops the server, destroying open connections and cutting pending delays short. Idempotent. */
  close(): Promise<void>;

  /** Stored events in insertion order, serialised like list items (a fresh snapshot on every read). */
  readonly events: readonly WireEvent[];
  /** Stored events with their external_id, in insertion order. */
  stored(): StoredEventView[];
  /** The external_id of each stored event, parallel to {@link MockPolarServer.events}. */
  storedExternalIds(): (string | null)[];
  /** How many stored events carry each external_id (always at most 1: proves there are no duplicates). */
  countByExternalId(): Map<string, number>;
  /**
   * Seeds events directly, bypassing validation (e.g. with chosen timestamps, for reconcile tests).
   * Returns them as list items.
   */
  addEvents(events: SeedEvent[]): WireEvent[];
  /** Stores a SystemEvent (`source` forced to `"system"`, name like `customer.created`) that shows up in lists. */
  addSystemEvent(event: SeedEvent): WireEvent;
  /** Registers customers (missing fields get defaults); returns them in wire shape. */
  addCustomers(...customers: MockCustomerInput[]): WireCustomer[];
  /** Known customers. */
  readonly customers: readonly WireCustomer[];
  /** Registers members of known customers. */
  addMembers(...members: MockMemberInput[]): WireMember[];
  /** Known members. */
  readonly members: readonly WireMember[];

  /** Every request received, in arrival order (live array; do not mutate). */
  readonly requests: readonly RecordedRequest[];
  /** The recorded `POST /v1/events/ingest` requests. */
  ingestRequests(): RecordedRequest[];
  /**
   * Resolves with the next request (received after this call) that satisfies `predicate`, once it
   * is finished (answered, dropped or abandoned). Rejects after `timeoutMs` (default 10 000).
   */
  nextRequest(predicate?: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;

  /** Appends faults to the script. */
  addFaults(...faults: Fault[]): void;
  /** Empties the fault script. */
  clearFaults(): void;
  /** The faults not consumed yet (with `times` counted down). */
  readonly pendingFaults: readonly Fault[];

  /** Sets the server clock to `Date.now() + ms`. */
  setClockOffset(ms: number): void;
  /** The server clock now. */
  now(): Date;
  /** Sets the delay applied to every answer. */
  setLatency(ms: number): void;
  /** Offline: every connection (new or open) is destroyed without an answer. */
  setOnline(online: boolean): void;
  /** Whether the server answers. */
  readonly online: boolean;
  /** Connections destroyed because the server was offline. */
  readonly rejectedConnections: number;
  /** Forgets stored events, recorded requests and faults (customers, clock, latency and online state stay). */
  reset(): void;

  /** Registers a meter; throws the evaluator's `MeterDefinitionError` for one Polar could not evaluate. */
  addMeter(meter: MockMeterInput): WireMeter;
  /** The registered meters, as `GET /v1/meters/` returns them. */
  readonly meters: readonly WireMeter[];
  /**
   * Credits (or, negative, debits) integer units to a customer's meter, as Polar's meter-credit
   * benefit does: stores a `meter.credited` system event and lists the meter in the customer's portal.
   * An unknown external id registers that customer. Returns the system event.
   */
  credit(customer: CustomerRef, meterId: string, units: number): WireEvent;
  /** The customer's meters as `GET /v1/customer-portal/meters/` returns them now (every page). */
  customerMeters(customer: CustomerRef): WireCustomerMeter[];
  /** Sets the listing lag (ms) for events ingested from now on. */
  setListingLag(ms: number): void;
  /** Sets the meter lag (see {@link MockPolarOptions.meterLag}). */
  setMeterLag(lag: number | Partial<MeterLag>): void;
  /** Runs every waiting customer meter job now: the portal's meters count every event stored so far. */
  runMeterJobs(): void;
}

function meterLagOf(lag: number | Partial<MeterLag> | undefined): MeterLag {
  if (lag === undefined) return POLAR_METER_LAG;
  if (typeof lag === 'number') return { ...POLAR_METER_LAG, min: lag };
  return { ...POLAR_METER_LAG, ...lag };
}

/**
 * Starts a mock Polar events API on 127.0.0.1.
 *
 * Routes: `POST /v1/events/ingest`, `GET /v1/events/` (also without the trailing slash),
 * `GET /v1/events/{id}`, `GET /v1/meters/`, `POST /v1/customer-sessions/` and
 * `GET /v1/customer-portal/meters/` (customer or member session token); everything else is 404
 * (or 405 for a wrong method). Every answer is JSON (but a 429's empty body and a CORS preflight's
 * "OK", as Polar's) and carries a `Date` header from the server clock. The defaults are Polar as
 * it runs today; see {@link MockPolarOptions} for the options that give older servers' behaviour.
 */
export async function startMockPolar(options: MockPolarOptions = {}): Promise<MockPolarServer> {
  const organizationId = options.organizationId ?? DEFAULT_ORGANIZATION_ID;
  const timers = new Map<NodeJS.Timeout, () => void>();
  const waiters = new Set<(r: RecordedRequest) => void>();
  const rt: MockRuntime = {
    store: undefined as unknown as EventStore,
    meters: undefined as unknown as MeterState,
    listingLag: options.listingLag ?? 0,
    rateLimit: typeof options.rateLimit === 'string' ? POLAR_RATE_LIMITS[options.rateLimit] : options.rateLimit,
    rateWindows: new Map(),
    rateIdentities: new Map(),
    orphans: options.orphans ?? 'hidden',
    tokens: options.token === undefined ? [] : Array.isArray(options.token) ? options.token : [options.token],
    scopes: options.scopes,
    subject: options.subject ?? 'organization',
    registerUnknown: options.registerUnknown ?? false,
    maxBodyBytes: options.maxBodyBytes ?? 10 * 1024 * 1024,
    latencyMs: options.latencyMs ?? 0,
    clockOffsetMs: options.clockOffsetMs ?? 0,
    online: true,
    faults: [...(options.faults ?? [])],
    requests: [],
    requestSeq: 0,
    cors: options.cors ?? true,
    onRequestDone: (r) => {
      for (const w of [...waiters]) w(r);
    },
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, ms);
        timers.set(t, resolve);
      }),
  };
  const store = new EventStore(organizationId, () => serverNow(rt), {
    listing: options.listing ?? 'tinybird',
    timestampFormat: options.timestampFormat ?? 'pydantic',
    random: options.random ?? Math.random,
  });
  rt.store = store;
  for (const c of options.customers ?? []) store.addCustomer(c);
  for (const m of options.members ?? []) store.addMember(m);
  const meters = new MeterState(store, () => serverNow(rt), options.memberModel ?? false, meterLagOf(options.meterLag));
  rt.meters = meters;
  for (const m of options.meters ?? []) meters.addMeter(m);

  const sockets = new Set<Socket>();
  let rejectedConnections = 0;
  const server = createServer(createHandler(rt));
  server.on('connection', (socket: Socket) => {
    if (!rt.online) {
      rejectedConnections++;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('mock-server: unexpected server address');
  const port = address.port;

  let closing: Promise<void> | undefined;

  const api: MockPolarServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    organizationId,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const [t, wake] of timers) {
          clearTimeout(t);
          wake();
        }
        timers.clear();
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      });
      return closing;
    },
    get events() {
      return store.records.map((r) => store.serialise(r));
    },
    stored() {
      return store.records.map((r) => ({ event: store.serialise(r), externalId: r.externalId }));
    },
    storedExternalIds() {
      return store.records.map((r) => r.externalId);
    },
    countByExternalId() {
      return store.countByExternalId();
    },
    addEvents(events) {
      const seeded = store.seed(events);
      enqueueMeterJobs(rt, seeded);
      return seeded.map((r) => store.serialise(r));
    },
    addSystemEvent(event) {
      const seeded = store.seed([{ ...event, source: 'system' }]);
      enqueueMeterJobs(rt, seeded);
      return store.serialise(seeded[0]!);
    },
    addCustomers(...customers) {
      return customers.map((c) => store.addCustomer(c));
    },
    get customers() {
      return store.customers();
    },
    addMembers(...members) {
      return members.map((m) => store.addMember(m));
    },
    get members() {
      return store.members();
    },
    get requests() {
      return rt.requests;
    },
    ingestRequests() {
      return rt.requests.filter((r) => r.kind === 'ingest');
    },
    nextRequest(predicate, timeoutMs = 10_000) {
      return new Promise<RecordedRequest>((resolve, reject) => {
        const waiter = (r: RecordedRequest): void => {
          if (predicate && !predicate(r)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve(r);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`mock-server: no matching request within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    addFaults(...faults) {
      rt.faults.push(...faults);
    },
    clearFaults() {
      rt.faults.length = 0;
    },
    get pendingFaults() {
      return rt.faults;
    },
    setClockOffset(ms) {
      rt.clockOffsetMs = ms;
    },
    now() {
      return new Date(serverNow(rt));
    },
    setLatency(ms) {
      rt.latencyMs = ms;
    },
    setOnline(online) {
      rt.online = online;
      if (!online) {
        for (const s of sockets) s.destroy();
      }
    },
    get online() {
      return rt.online;
    },
    get rejectedConnections() {
      return rejectedConnections;
    },
    reset() {
      store.clearEvents();
      rt.requests.length = 0;
      rt.faults.length = 0;
      rt.rateWindows.clear();
      rt.rateIdentities.clear();
    },
    addMeter(meter) {
      return meters.addMeter(meter);
    },
    get meters() {
      return meters.list();
    },
    credit(customer, meterId, units) {
      return store.serialise(meters.credit(customer, meterId, units));
    },
    customerMeters(customer) {
      const c = meters.resolveCustomer(customer, false);
      return c ? meters.customerMeters(c.id, Date.now()) : [];
    },
    setListingLag(ms) {
      rt.listingLag = ms;
    },
    setMeterLag(lag) {
      meters.lag = meterLagOf(lag);
    },
    runMeterJobs() {
      meters.runJobs();
    },
  };
  return api;
}
