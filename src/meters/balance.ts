import { MeterDefinitionError } from '../errors.js';
import type { Mirror } from '../mirror/types.js';
import { compileMeter, type CompiledMeter } from './evaluate.js';
import { readMeterRecords } from '../storage/meter-read.js';
import type { BufferDatabase } from '../storage/db.js';
import type { EventRecord, EventStatus } from '../storage/schema.js';
import type { CustomerMeter, CustomerPortal } from './portal.js';
import { connect, localEvent, usageFilter } from './usage.js';

/**
 * A customer's credits on a meter, lowered by the usage Polar's meter may not count yet.
 * @example
 * const { balance } = await meterBalance(mirror, portal, meterId, { externalCustomerId: 'user_42' });
 * if (balance <= 0) showOutOfCredits();
 */
export interface MeterBalance {
  /** Units credited to the customer (Polar's `credited_units`). */
  credited: number;
  /** Units consumed: the server's `consumed_units` plus `uncounted`. */
  consumed: number;
  /** `credited - consumed`: the server's `balance` minus `uncounted`. */
  balance: number;
  /**
   * The meter's value over the matching local events Polar's meter may not count yet: waiting, in
   * flight, and held by Polar (sent or confirmed) until a portal reading proves it counted them.
   */
  uncounted: number;
}

/**
 * Which customer's local events lower the balance (the one the portal's session token belongs to).
 * @example
 * { externalCustomerId: 'user_42' }
 */
export interface BalanceCustomer {
  externalCustomerId?: string;
  customerId?: string;
}

/** The checked meter and customer of a balance read. */
export function balanceSetup(portal: CustomerPortal, meter: unknown, customer: unknown) {
  if (typeof portal?.meters !== 'function') throw new TypeError('Expected a portal made by customerPortalTransport().');
  // The meter's id, whose definition the portal holds, or the definition itself (with its `id`).
  const definition = typeof meter === 'string' ? portal.definition(meter) : meter;
  const id = (definition as { id?: unknown } | null)?.id;
  if (typeof id !== 'string') {
    throw new TypeError(
      typeof meter === 'string'
        ? `No definition of meter ${JSON.stringify(meter)}: pass the meters (GET /v1/meters/) as customerPortalTransport({ meters }).`
        : 'Expected a meter id or a meter definition with its `id`.',
    );
  }
  const compiled = compileMeter(definition);
  if (compiled.func !== 'count' && compiled.func !== 'sum') {
    throw new MeterDefinitionError('aggregation.func', `a balance can be lowered by local events only for a count or sum meter, not ${compiled.func}`);
  }
  const where = usageFilter(customer);
  if (where.customerKey === null) throw new TypeError('Expected the customer: { externalCustomerId } or { customerId }.');
  return { id, compiled, where };
}

/**
 * How long after Polar answered an event's ingest a recompute of the customer's meter surely
 * counts it. Polar recomputes a customer's meters in a delayed job, at least 15 s after the
 * customer's last event; waiting less than that leaves room for the job's own run and for a
 * device clock a few seconds behind Polar's.
 */
export const RECOUNT_MS = 10_000;

/** One answer of the portal, and when (device clock) it was asked for: before the local read began. */
export interface PortalReading {
  meter: CustomerMeter | undefined;
  askedAt: number;
}

/**
 * The balance rule: an event lowers the balance from track() until a portal reading proves that
 * Polar's meter counts it, and only then. Pending and sending events always lower it; sent and
 * confirmed ones until the meter was recomputed (`modified_at`) RECOUNT_MS after Polar answered
 * their ingest, and the portal was asked after that too. No move from one state to another
 * changes this test (it reads `sentAt`, not the state, and a reading asked before an event was
 * sent never counts it), so under one portal reading the balance never rises as events move on:
 * while Polar's meter lags it errs low, never high. Only a dead letter or clear() lifts it: Polar
 * never bills those.
 */
export function countedByPortal(record: { status: EventStatus; sentAt: number | null; confirmedAt?: number | undefined }, reading: PortalReading): boolean {
  // Versions before revision 3 confirmed some events never answered (no sentAt): Polar held them by the confirmation.
  const heldSince = record.status === 'sent' ? record.sentAt : record.status === 'confirmed' ? (record.sentAt ?? record.confirmedAt ?? null) : null;
  if (heldSince === null || !reading.meter) return false;
  const recomputedAt = (reading.meter.modifiedAt ?? reading.meter.createdAt).getTime();
  return heldSince + RECOUNT_MS <= Math.min(recomputedAt, reading.askedAt);
}

/**
 * The customer's meter from the portal (`GET /v1/customer-portal/meters/`), its balance lowered by
 * the matching local events Polar's meter may not count yet (see `countedByPortal`). A meter the
 * customer was never credited on reads as 0 credited, 0 consumed.
 * @throws TransportError from the portal; MeterDefinitionError for a meter other than count or sum.
 * @example
 * const portal = customerPortalTransport({ baseUrl: 'https://api.polar.sh', token: getSessionToken, meters });
 * const { credited, balance, uncounted } = await meterBalance(mirror, portal, meters[0].id, { externalCustomerId: 'user_42' });
 */
export async function meterBalance(mirror: Mirror, portal: CustomerPortal, meterId: string | object, customer: BalanceCustomer): Promise<MeterBalance> {
  const { id, compiled, where } = balanceSetup(portal, meterId, customer);
  const { db, now } = await connect(mirror);
  const [reading, records] = await Promise.all([readPortal(portal, id, now), readHeld(db, where.customerKey!, now, 'customer')]);
  return balanceOf(reading, uncounted(compiled, records, reading));
}

/** The customer's local events (by default those not confirmed), whatever their timestamp: Polar's meter counts each once it has it. */
export async function readHeld(db: BufferDatabase, customerKey: string, now: number, local?: 'customer'): Promise<EventRecord[]> {
  return (await readMeterRecords(db, { customerKey, sinceMs: -Infinity, untilMs: Infinity, local }, now)).local;
}

/** Asks the portal for one meter; `askedAt` must be taken before the local read it goes with begins. */
export async function readPortal(portal: CustomerPortal, meterId: string, askedAt: number): Promise<PortalReading> {
  return { meter: (await portal.meters({ meterId })).find((m) => m.meterId === meterId), askedAt };
}

/** The meter's value over the local events the reading does not prove counted. */
export function uncounted(compiled: CompiledMeter, records: readonly EventRecord[], reading: PortalReading): number {
  const tally = compiled.tally();
  for (const r of records) if (!countedByPortal(r, reading)) tally.add(localEvent(r));
  return tally.value();
}

export function balanceOf({ meter }: PortalReading, local: number): MeterBalance {
  const credited = meter?.creditedUnits ?? 0;
  return {
    credited,
    consumed: (meter?.consumedUnits ?? 0) + local,
    balance: (meter?.balance ?? credited) - local,
    uncounted: local,
  };
}
