/**
 * The mock server's meters: meter definitions (`GET /v1/meters/`), customer sessions
 * (`POST /v1/customer-sessions/`) and the customer's own meters (`GET /v1/customer-portal/meters/`).
 * Usage is computed from the stored events with the library's own evaluator (src/meters/evaluate.ts),
 * so the mock and the device can never disagree by having two implementations.
 *
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { compileMeter } from '../meters/evaluate.js';
import type { CompiledMeter } from '../meters/evaluate.js';
import { formatPythonTimestamp, isUuid } from './rules.js';
import type { EventStore, StoredEvent, WireCustomer } from './state.js';

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
/** The name of the system event Polar records for a credit (server/polar/event/system.py). */
export const METER_CREDITED = 'meter.credited';

interface Grant {
  id: string;
  createdMicros: number;
}

/** Meters, grants and customer sessions of one mock server. */
export class MeterState {
  private readonly meters = new Map<string, { wire: WireMeter; compiled: CompiledMeter }>();
  /** `${customerId} ${meterId}` -> the customer meter; Polar lists a customer's meter once it is granted. */
  private readonly grants = new Map<string, Grant>();
  private readonly sessions = new Map<string, { customerId: string; expiresMs: number }>();

  constructor(
    private readonly store: EventStore,
    private readonly nowMs: () => number,
  ) {}

  /** Registers a meter (refused, with the evaluator's error, when Polar could not evaluate it). */
  addMeter(input: MockMeterInput): WireMeter {
    const compiled = compileMeter(input);
    const now = formatPythonTimestamp(this.nowMs() * 1000);
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
    this.meters.set(wire.id, { wire, compiled });
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
    return this.store.seed([
      {
        name: METER_CREDITED,
        source: 'system',
        customer_id: customer.id,
        metadata: { meter_id: meter.wire.id, units, rollover: false },
      },
    ])[0]!;
  }

  /** Opens a customer session for a known customer; its token reads that customer's portal. */
  createSession(customer: WireCustomer, returnUrl: string | null): WireCustomerSession {
    const nowMs = this.nowMs();
    const token = CUSTOMER_SESSION_TOKEN_PREFIX + randomBytes(24).toString('base64url');
    this.sessions.set(token, { customerId: customer.id, expiresMs: nowMs + CUSTOMER_SESSION_TTL_MS });
    const query = new URLSearchParams({ customer_session_token: token, email: customer.email });
    return {
      id: randomUUID(),
      created_at: formatPythonTimestamp(nowMs * 1000),
      modified_at: null,
      token,
      expires_at: formatPythonTimestamp((nowMs + CUSTOMER_SESSION_TTL_MS) * 1000),
      return_url: returnUrl,
      customer_portal_url: `https://polar.sh/mock/portal?${query.toString()}`,
      customer_id: customer.id,
      customer: structuredClone(customer),
    };
  }

  /** The customer id a live session token belongs to. */
  sessionCustomer(token: string): string | undefined {
    const s = this.sessions.get(token);
    return s && s.expiresMs > this.nowMs() ? s.customerId : undefined;
  }

  /**
   * The customer's meters, newest change first (Polar's default `-modified_at`). Usage counts the
   * customer's listed user events (by `customer_id`, or `external_customer_id` = the customer's
   * external id); credits are the non-negative running sum of its `meter.credited` events.
   */
  customerMeters(customerId: string, listedAt: number): WireCustomerMeter[] {
    const customer = this.store.customers().find((c) => c.id === customerId);
    if (!customer) return [];
    const mine = this.store.records.filter(
      (e) =>
        this.store.isListed(e, listedAt) && (e.customerId === customer.id || (customer.external_id !== null && e.externalCustomerId === customer.external_id)),
    );
    const items: { item: WireCustomerMeter; modified: number }[] = [];
    for (const { wire, compiled } of this.meters.values()) {
      const grant = this.grants.get(`${customer.id} ${wire.id}`);
      if (!grant || wire.archived_at !== null) continue;
      const used = mine.filter((e) => e.source === 'user' && compiled.matches(meterEvent(e)));
      const credits = mine
        .filter((e) => e.name === METER_CREDITED && e.source === 'system' && e.metadata['meter_id'] === wire.id)
        .sort((a, b) => a.timestampMicros - b.timestampMicros || a.seq - b.seq);
      let credited = 0;
      for (const c of credits) credited = Math.max(0, credited + Number(c.metadata['units']));
      const consumed = compiled.aggregate(used.map(meterEvent));
      const modified = Math.max(grant.createdMicros, ...used.map((e) => e.timestampMicros), ...credits.map((e) => e.timestampMicros));
      items.push({
        modified,
        item: {
          id: grant.id,
          created_at: formatPythonTimestamp(grant.createdMicros),
          modified_at: formatPythonTimestamp(modified),
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

function meterEvent(e: StoredEvent): { name: string; timestamp: Date; source: string; metadata: Record<string, unknown> } {
  return { name: e.name, timestamp: new Date(Math.floor(e.timestampMicros / 1000)), source: e.source, metadata: e.metadata };
}
