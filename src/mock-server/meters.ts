/**
 * The mock server's meters: meter definitions (`GET /v1/meters/`), customer sessions
 * (`POST /v1/customer-sessions/`) and the customer's own meters (`GET /v1/customer-portal/meters/`).
 * Usage is Polar's SQL aggregation re-written for the mock (./aggregate.ts), not the library's
 * evaluator, so a difference between the two fails a test. As on Polar, a customer's meters are
 * recomputed by a delayed job (customer_meter/tasks.py), not when an event is listed.
 *
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { checkMeterDefinition, usageQuantity } from './aggregate.js';
import { isUuid } from './rules.js';
import type { EventStore, StoredEvent, WireCustomer, WireMember } from './state.js';

/** A meter as `GET /v1/meters/` returns it (Polar's `Meter` schema, snake_case). */
export interface WireMeter {
  id: string;
  created_at: string;
  modified_at: string | null;
  metadata: Record<string, string | number | boolean>;
  name: string;
  unit: string;
  custom_label: string | null;
  custom_multiplier: number | null;
  filter: unknown;
  aggregation: unknown;
  organization_id: string;
  archived_at: string | null;
  [extra: string]: unknown;
}

/** A meter to register: Polar's definition; `name`, `filter` and `aggregation` are required, the rest defaults. */
export type MockMeterInput = Partial<WireMeter> & Pick<WireMeter, 'name' | 'filter' | 'aggregation'>;

/** One item of `GET /v1/customer-portal/meters/` (Polar's `CustomerCustomerMeter`). */
export interface WireCustomerMeter {
  id: string;
  created_at: string;
  modified_at: string | null;
  customer_id: string;
  meter_id: string;
  consumed_units: number;
  credited_units: number;
  balance: number;
  meter: { id: string; created_at: string; modified_at: string | null; name: string };
}

/** A customer session as `POST /v1/customer-sessions/` returns it. */
export interface WireCustomerSession {
  id: string;
  created_at: string;
  modified_at: string | null;
  token: string;
  expires_at: string;
  return_url: string | null;
  customer_portal_url: string;
  customer_id: string;
  customer: WireCustomer;
}

/** Who a credit or a session is for: a known customer's id, its external id, or either as an object. */
export type CustomerRef = string | { customerId: string } | { externalCustomerId: string };

/** Polar's `CUSTOMER_SESSION_TTL` (server/polar/config.py). */
export const CUSTOMER_SESSION_TTL_MS = 60 * 60 * 1000;
/** Polar's `CUSTOMER_SESSION_TOKEN_PREFIX` (server/polar/customer_session/service.py). */
export const CUSTOMER_SESSION_TOKEN_PREFIX = 'polar_cst_';
/** Polar's `MEMBER_SESSION_TOKEN_PREFIX` (server/polar/models/member_session.py). */
export const MEMBER_SESSION_TOKEN_PREFIX = 'polar_mst_';

/**
 * When the customer meter job runs (customer_meter/tasks.py, worker/_debounce.py): `min` ms after
 * the customer's last event, but no later than `max` ms after the first one it waits for.
 * Polar: 15 s and 180 min. `{ min: 0 }` recomputes on every read.
 */
export interface MeterLag {
  min: number;
  max: number;
}

/** Polar's `CUSTOMER_METER_UPDATE_DEBOUNCE_MIN_THRESHOLD` / `_MAX_THRESHOLD` (config.py). */
export const POLAR_METER_LAG: MeterLag = { min: 15_000, max: 180 * 60_000 };

interface MeterJob {
  /** Real ms of the first and last event the pending job waits for (null: none pending). */
  first: number | null;
  last: number | null;
  /** Real ms the job last ran: the meters show the events ingested by then. */
  ranAt: number | null;
}
/** The name of the system event Polar records for a credit (server/polar/event/system.py). */
export const METER_CREDITED = 'meter.credited';

interface Grant {
  id: string;
  createdMicros: number;
}

/** Meters, grants and customer sessions of one mock server. */
export class MeterState {
  private readonly meters = new Map<string, { wire: WireMeter }>();
  /** `${customerId} ${meterId}` -> the customer meter; Polar lists a customer's meter once it is granted. */
  private readonly grants = new Map<string, Grant>();
  private readonly sessions = new Map<string, { customerId: string; memberId: string | null; expiresMs: number }>();
  private readonly jobs = new Map<string, MeterJob>();

  constructor(
    private readonly store: EventStore,
    private readonly nowMs: () => number,
    /** The organization's `member_model_enabled`: customer sessions are member sessions. */
    public memberModel = false,
    public lag: MeterLag = POLAR_METER_LAG,
  ) {}

  /** Registers a meter (refused with a `TypeError` when Polar's schema would refuse it). */
  addMeter(input: MockMeterInput): WireMeter {
    checkMeterDefinition(input);
    const now = this.store.formatTime(this.nowMs() * 1000);
    const wire: WireMeter = {
      created_at: now,
      modified_at: null,
      metadata: {},
      unit: 'scalar',
      custom_label: null,
      custom_multiplier: null,
      organization_id: this.store.organizationId,
      archived_at: null,
      ...structuredClone(input),
      id: (input.id ?? randomUUID()).toLowerCase(),
    };
    this.meters.set(wire.id, { wire });
    return structuredClone(wire);
  }

  /** Every meter, in registration order. */
  list(): WireMeter[] {
    return [...this.meters.values()].map((m) => structuredClone(m.wire));
  }

  /** The known customer a reference names; an unknown external id registers a customer with it. */
  resolveCustomer(ref: CustomerRef, create: boolean): WireCustomer | undefined {
    const all = this.store.customers();
    let external: string;
    if (typeof ref === 'string') {
      const id = ref.toLowerCase();
      const byId = isUuid(ref) ? all.find((c) => c.id === id) : undefined;
      if (byId) return byId;
      external = ref;
    } else if ('customerId' in ref) {
      const id = ref.customerId.toLowerCase();
      return all.find((c) => c.id === id);
    } else external = ref.externalCustomerId;
    const found = all.find((c) => c.external_id === external);
    return found ?? (create ? this.store.addCustomer({ external_id: external }) : undefined);
  }

  /**
   * Credits units to a customer's meter as Polar does: a `meter.credited` system event (which lists
   * show), and the meter becomes one of the customer's meters. Negative units debit.
   */
  credit(ref: CustomerRef, meterId: string, units: number): StoredEvent {
    if (!Number.isInteger(units)) throw new TypeError(`credit: units must be an integer, got ${units}`);
    const meter = this.meters.get(meterId.toLowerCase());
    if (!meter) throw new Error(`credit: no meter ${JSON.stringify(meterId)}`);
    const customer = this.resolveCustomer(ref, true)!;
    const key = `${customer.id} ${meter.wire.id}`;
    if (!this.grants.has(key)) this.grants.set(key, { id: randomUUID(), createdMicros: this.nowMs() * 1000 });
    const event = this.store.seed([
      {
        name: METER_CREDITED,
        source: 'system',
        customer_id: customer.id,
        metadata: { meter_id: meter.wire.id, units, rollover: false },
      },
    ])[0]!;
    // Polar's create_event enqueues the event like an ingested one: the job recomputes the meter.
    this.enqueue(customer.id, Date.now());
    return event;
  }

  /**
   * `customer_meter.update_customer` was enqueued for this customer at real time `at` (an event of
   * theirs whose parent chain is complete was ingested): the job runs after the debounce.
   */
  enqueue(customerId: string, at: number): void {
    this.settle(customerId, at);
    const job = this.jobs.get(customerId) ?? { first: null, last: null, ranAt: null };
    job.first ??= at;
    job.last = at;
    this.jobs.set(customerId, job);
    this.settle(customerId, at);
  }

  /** Runs every pending meter job now (a test's way to skip the debounce). */
  runJobs(at = Date.now()): void {
    for (const job of this.jobs.values()) {
      if (job.last !== null) {
        job.ranAt = at;
        job.first = job.last = null;
      }
    }
  }

  /** Runs the customer's job if its time came by `at`; returns when it last ran. */
  private settle(customerId: string, at: number): number | null {
    const job = this.jobs.get(customerId);
    if (!job) return null;
    if (job.last !== null && job.first !== null) {
      const due = Math.min(job.last + this.lag.min, job.first + this.lag.max);
      if (due <= at) {
        job.ranAt = due;
        job.first = job.last = null;
      }
    }
    return job.ranAt;
  }

  /** The member a session is for, as Polar's `_resolve_member` picks it; an error item otherwise. */
  resolveMember(
    customer: WireCustomer,
    memberId: string | undefined,
    externalMemberId: string | undefined,
  ): { member: WireMember } | { loc: string[]; msg: string; input: unknown } {
    const mine = this.store.members().filter((m) => m.customer_id === customer.id);
    if (memberId !== undefined) {
      const m = mine.find((x) => x.id === memberId.toLowerCase());
      return m ? { member: m } : { loc: ['body', 'member_id'], msg: 'Member does not exist for this customer.', input: memberId };
    }
    if (externalMemberId !== undefined) {
      const m = mine.find((x) => x.external_id === externalMemberId);
      return m ? { member: m } : { loc: ['body', 'external_member_id'], msg: 'Member does not exist for this customer.', input: externalMemberId };
    }
    if (customer.type === 'team') return { loc: ['body', 'member_id'], msg: 'member_id is required for team customers.', input: null };
    // An individual customer's owner member, created on first use.
    const owner = mine.find((x) => x.role === 'owner') ?? this.store.addMember({ customer_id: customer.id, role: 'owner', email: customer.email });
    return { member: owner };
  }

  /**
   * Opens a session for a known customer; its token reads that customer's portal. With the member
   * model it is a member session (`polar_mst_`), else a customer session (`polar_cst_`).
   */
  createSession(customer: WireCustomer, returnUrl: string | null, member: WireMember | null = null): WireCustomerSession {
    const nowMs = this.nowMs();
    const prefix = member ? MEMBER_SESSION_TOKEN_PREFIX : CUSTOMER_SESSION_TOKEN_PREFIX;
    const token = prefix + randomBytes(24).toString('base64url');
    this.sessions.set(token, { customerId: customer.id, memberId: member?.id ?? null, expiresMs: nowMs + CUSTOMER_SESSION_TTL_MS });
    const query = new URLSearchParams({ customer_session_token: token });
    if (customer.email !== null) query.set('email', customer.email);
    return {
      id: randomUUID(),
      created_at: this.store.formatTime(nowMs * 1000),
      modified_at: null,
      token,
      expires_at: this.store.formatTime((nowMs + CUSTOMER_SESSION_TTL_MS) * 1000),
      return_url: returnUrl,
      customer_portal_url: `https://polar.sh/mock/portal?${query.toString()}`,
      customer_id: customer.id,
      customer: structuredClone(customer),
    };
  }

  /** The customer id a live session token (customer or member session) belongs to. */
  sessionCustomer(token: string): string | undefined {
    const s = this.sessions.get(token);
    return s && s.expiresMs > this.nowMs() ? s.customerId : undefined;
  }

  /** Whether the token is a session token this server issued (live or not). */
  isSessionToken(token: string): boolean {
    return this.sessions.has(token);
  }

  /**
   * The customer's meters as the last run of its meter job left them (at real time `at`), newest
   * change first (Polar's default `-modified_at`). Usage is Polar's SQL over the events stored by
   * then, whether listed yet or not (the job reads Postgres, not the list store); credits are the
   * non-negative running sum of its `meter.credited` events.
   */
  customerMeters(customerId: string, at: number): WireCustomerMeter[] {
    const customer = this.store.customers().find((c) => c.id === customerId);
    if (!customer) return [];
    const ranAt = this.settle(customer.id, at);
    const stored = ranAt === null ? [] : this.store.records.filter((e) => e.ingestedAt <= ranAt);
    const items: { item: WireCustomerMeter; modified: number }[] = [];
    for (const { wire } of this.meters.values()) {
      const grant = this.grants.get(`${customer.id} ${wire.id}`);
      if (!grant || wire.archived_at !== null) continue;
      const credits = stored
        .filter((e) => e.customerId === customer.id && e.name === METER_CREDITED && e.source === 'system' && e.metadata['meter_id'] === wire.id)
        .sort((a, b) => a.timestampMicros - b.timestampMicros || a.seq - b.seq);
      let credited = 0;
      for (const c of credits) credited = Math.max(0, credited + Number(c.metadata['units']));
      const consumed = usageQuantity(wire, customer, stored);
      const modified = Math.max(grant.createdMicros, ...credits.map((e) => e.timestampMicros), (ranAt ?? 0) * 1000);
      items.push({
        modified,
        item: {
          id: grant.id,
          created_at: this.store.formatTime(grant.createdMicros),
          modified_at: this.store.formatTime(modified),
          customer_id: customer.id,
          meter_id: wire.id,
          consumed_units: consumed,
          credited_units: credited,
          balance: credited - consumed,
          meter: { id: wire.id, created_at: wire.created_at, modified_at: wire.modified_at, name: wire.name },
        },
      });
    }
    return items.sort((a, b) => b.modified - a.modified).map((x) => x.item);
  }
}
