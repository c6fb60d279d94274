import { MeterDefinitionError } from '../errors.js';
import type { Mirror } from '../mirror/types.js';
import { compileMeter, type CompiledMeter } from './evaluate.js';
import type { CustomerMeter, CustomerPortal } from './portal.js';
import { read, usageFilter, type Where } from './usage.js';

/**
 * A customer's credits on a meter, lowered by what the device has not sent yet.
 * @example
 * const { balance } = await meterBalance(mirror, portal, meterId, { externalCustomerId: 'user_42' });
 * if (balance <= 0) showOutOfCredits();
 */
export interface MeterBalance {
  /** Units credited to the customer (Polar's `credited_units`). */
  credited: number;
  /** Units consumed: the server's `consumed_units` plus `localUnsent`. */
  consumed: number;
  /** `credited - consumed`: the server's `balance` minus `localUnsent`. */
  balance: number;
  /** The meter's value over the matching local events not sent yet (pending and sending). */
  localUnsent: number;
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
 * The customer's meter from the portal (`GET /v1/customer-portal/meters/`), its balance already
 * lowered by the matching local events that have not reached the server (pending and sending).
 * A meter the customer was never credited on reads as 0 credited, 0 consumed.
 * @throws TransportError from the portal; MeterDefinitionError for a meter other than count or sum.
 * @example
 * const portal = customerPortalTransport({ baseUrl: 'https://api.polar.sh', token: getSessionToken, meters });
 * const { credited, balance, localUnsent } = await meterBalance(mirror, portal, meters[0].id, { externalCustomerId: 'user_42' });
 */
export async function meterBalance(mirror: Mirror, portal: CustomerPortal, meterId: string | object, customer: BalanceCustomer): Promise<MeterBalance> {
  const { id, compiled, where } = balanceSetup(portal, meterId, customer);
  const [server, local] = await Promise.all([serverMeter(portal, id), localUnsent(mirror, compiled, where)]);
  return balanceOf(server, local);
}

export async function serverMeter(portal: CustomerPortal, meterId: string): Promise<CustomerMeter | undefined> {
  return (await portal.meters({ meterId })).find((m) => m.meterId === meterId);
}

export async function localUnsent(mirror: Mirror, compiled: CompiledMeter, where: Where): Promise<number> {
  const tally = compiled.tally();
  // Every unsent event: the server counts them all once they arrive, whatever their timestamp.
  await read(mirror, { ...where, sinceMs: -Infinity, untilMs: Infinity }, true, false, (event) => tally.add(event));
  return tally.value();
}

export function balanceOf(server: CustomerMeter | undefined, local: number): MeterBalance {
  const credited = server?.creditedUnits ?? 0;
  return {
    credited,
    consumed: (server?.consumedUnits ?? 0) + local,
    balance: (server?.balance ?? credited) - local,
    localUnsent: local,
  };
}
