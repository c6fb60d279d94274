/**
 * The relay's public types: its options, the session `authenticate` names, its stats and the
 * events its `onEvent` hook receives.
 *
 * @module
 */

/**
 * Who a device's request is from, as the app's `authenticate` decides: a customer by the app's own
 * id (`externalCustomerId`) or by Polar's (`customerId`), and the members of that customer's team
 * the session may report for (the first is set on events that name none).
 * @example
 * const session: RelaySession = { externalCustomerId: 'team_42', externalMemberIds: ['user_7'] };
 */
export type RelaySession = { externalCustomerId: string; externalMemberIds?: string[] } | { customerId: string; memberIds?: string[] };

/** The routes the relay serves (under `prefix`). */
export type RelayRoute = 'ingest' | 'list' | 'customer-session';

/** What the relay asked Polar. */
export type PolarCall = 'ingest' | 'list' | 'get' | 'customer-session';

/**
 * One notice for logs and metrics (a discriminated union on `type`; the access token is never in it).
 * - `polar`: one Polar request: its kind, status (0: no answer), events and device requests it carried, ms.
 * - `answer`: one device request answered: its route and status (404s and 401s included).
 * - `error`: something the operator should know: Polar refused the token, Polar unreachable, a bug.
 */
export type RelayEvent =
  | { type: 'polar'; call: PolarCall; status: number; ms: number; events?: number; devices?: number }
  | { type: 'answer'; route: RelayRoute | null; status: number; events?: number }
  | { type: 'error'; message: string; cause?: unknown };

/** Per signed-in customer limits, per minute (fixed one-minute windows). */
export interface PerUserLimits {
  /** Requests per minute, all routes together. @default 120 */
  requests?: number;
  /** Events per minute sent to `POST /v1/events/ingest`. @default 6000 */
  events?: number;
  /** List and customer-session requests per minute (each costs one Polar request). @default 30 */
  reads?: number;
}

/** Timers and the clock; tests inject a manual one. */
export interface RelayClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Options of `createRelay`.
 * @example
 * createRelay({ accessToken: process.env.POLAR_ACCESS_TOKEN!, authenticate: (request) => sessionOf(request), prefix: '/usage' })
 */
export interface RelayOptions {
  /** An organization token (events:read, events:write, customer_sessions:write). Never logged, never sent to a device. */
  accessToken: string;
  /** Who is signed in (or a Promise of it); `null` answers 401. */
  authenticate: (request: Request) => RelaySession | null | undefined | Promise<RelaySession | null | undefined>;
  /** Polar's API. @default "https://api.polar.sh" */
  baseUrl?: string;
  /** Where the routes live, e.g. "/usage". @default "" */
  prefix?: string;
  /**
   * ms an ingest request may wait to be sent with other devices' requests. One window is one Polar
   * request (more only when it holds over 1,000 events or 10 MiB): 1000 ms caps ingest at 60 Polar
   * requests a minute whatever the number of devices, for at most a second more latency.
   * @default 1000
   */
  window?: number;
  /**
   * Polar requests per minute this relay may spend, ingest and reads together (a token bucket that
   * holds 6 s of it). Polar allows an organization token 500 a minute across all of /v1, shared with
   * the app's own calls: 300 leaves 200 for those (checkouts, portal sessions) and for a second
   * instance during a rolling deploy. Several instances split Polar's 500 between them.
   * @default 300
   */
  budget?: number;
  /** Per signed-in customer limits; past one, 429 with Retry-After. */
  perUser?: PerUserLimits;
  /** Largest device request body, in bytes (413 beyond). @default 1048576 */
  maxBodyBytes?: number;
  /** ms a device request may wait for the budget before it is answered 429 (devices time out at 10 s). @default 5000 */
  maxWait?: number;
  /** The fetch used to reach Polar. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Logs and metrics; no console output by default. A hook that throws is ignored. */
  onEvent?: (event: RelayEvent) => void;
  /** Timers and clock. @default the global ones */
  clock?: RelayClock;
}

/** `relay.stats()`. */
export interface RelayStats {
  /** Polar requests sent since the relay started (ingest and reads). */
  polarRequests: number;
  /** Polar requests sent in the last 60 s. */
  polarRequestsPerMinute: number;
  /** Events per Polar ingest request (0 before the first). */
  eventsPerPolarRequest: number;
  /** Polar's 429 answers seen. */
  rateLimited: number;
  /** Device ingest requests waiting for a window or for Polar. */
  waiting: number;
  /** Device requests answered. */
  answered: number;
  /** Device answers by status, e.g. `{ "200": 950, "422": 2, "429": 7 }`. */
  answers: Record<string, number>;
  /** Polar ingest requests and read requests (lists, event lookups, customer sessions). */
  polarIngestRequests: number;
  polarReads: number;
  /** Events sent to Polar in ingest requests. */
  events: number;
}

/** What `createRelay` returns. */
export interface Relay {
  /** Serves one device request (Web-standard), under `prefix`. */
  fetch(request: Request): Promise<Response>;
  /** Counters for dashboards and tests. */
  stats(): RelayStats;
  /** Sends what waits, answers every device, stops timers; later requests get 503. */
  close(): Promise<void>;
}
