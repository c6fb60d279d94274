import { forEachMerged } from '../mirror/merged.js';
import { mirrorSeam } from '../mirror/mirror.js';
import { checkFilter } from '../mirror/query.js';
import type { Mirror } from '../mirror/types.js';
import { storageError } from '../storage/db.js';
import { customerKeysFor } from '../storage/mirror-store.js';
import { statusRange } from '../storage/queue.js';
import { BY_STATUS, EVENTS, type EventRecord } from '../storage/schema.js';
import { compileMeter, type CompiledMeter, type MeterEvent, type Tally } from './evaluate.js';

/**
 * Whose usage, and over which time (`since` included, `until` excluded). Without a customer, every
 * customer in the mirror.
 * @example
 * { externalCustomerId: 'user_42', since: startOfMonth, until: startOfNextMonth }
 */
export interface UsageOptions {
  externalCustomerId?: string;
  customerId?: string;
  since?: Date;
  until?: Date;
}

/**
 * A meter's value on the device. For `count` and `sum`, `value = server + local`; for the other
 * functions `server` and `local` are each set's own value (0 when empty) and `value` is over both.
 * @example
 * const { value, exact } = await meterUsage(mirror, meter, { externalCustomerId: 'user_42' });
 */
export interface MeterUsage {
  value: number;
  /** The part from mirrored server events. */
  server: number;
  /** The part from local events not confirmed yet (pending, sending, sent). */
  local: number;
  /** True when no matching local event waits for confirmation. */
  exact: boolean;
}

const USAGE_KEYS = ['externalCustomerId', 'customerId', 'since', 'until'];

/** The checked filter of a usage read (TypeError for a bad one, before any read). */
export function usageFilter(options: unknown): { filter: UsageOptions; customerKey: string | null; sinceMs: number; untilMs: number } {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError('Expected options { externalCustomerId?, customerId?, since?, until? }.');
  }
  const filter: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (USAGE_KEYS.includes(key)) filter[key] = value;
    else if (key !== 'onError') throw new TypeError(`Unknown option \`${key}\`. Known: ${USAGE_KEYS.join(', ')}.`);
  }
  const f = checkFilter(filter);
  return { filter: filter as UsageOptions, customerKey: f.customerKey, sinceMs: f.sinceMs, untilMs: f.untilMs };
}

/**
 * Computes a Polar meter for one customer on the device: every matching event once, the mirrored
 * server events plus the local events not yet confirmed; never dead letters. Reads one customer's
 * time range through the indexes, in one read transaction.
 * @throws MeterDefinitionError for a meter Polar would refuse (nothing is read); TypeError for bad options.
 * @example
 * const meter = await (await fetch('/api/meters/tokens')).json(); // GET /v1/meters/{id}, from your backend
 * const usage = await meterUsage(mirror, meter, { externalCustomerId: 'user_42', since: startOfMonth });
 * bar.style.width = `${(100 * usage.value) / limit}%`;
 */
export async function meterUsage(mirror: Mirror, meter: unknown, options: UsageOptions = {}): Promise<MeterUsage> {
  const compiled = compileMeter(meter);
  const { filter } = usageFilter(options);
  return usageOf(compiled, await readAll(mirror, compiled, filter));
}

/** What a full read found: each part's tally, and the local events seen (to tell when one left). */
export interface Parts {
  server: Tally;
  local: Tally;
  localIds: Set<string>;
}

export async function readAll(mirror: Mirror, compiled: CompiledMeter, filter: UsageOptions): Promise<Parts> {
  const parts: Parts = { server: compiled.tally(), local: compiled.tally(), localIds: new Set() };
  await forEachMerged(mirror, filter, (event) => {
    // Mirrored events come with their server copy; local ones not confirmed come without.
    if (event.userEvent) parts.server.add(event.userEvent);
    else {
      parts.localIds.add(event.externalId);
      parts.local.add(event);
    }
  });
  return parts;
}

export function usageOf(compiled: CompiledMeter, { server, local }: Pick<Parts, 'server' | 'local'>): MeterUsage {
  const s = server.value();
  const l = local.value();
  // Each part is a compensated sum; the total is their one sum, so value === server + local.
  const value = compiled.func === 'count' || compiled.func === 'sum' ? s + l : server.with(local);
  return { value, server: s, local: l, exact: local.count === 0 };
}

/**
 * Visits the local events that are not confirmed (pending and sending; `sent` too unless
 * `unsentOnly`) of one customer and time range, reading only the waiting and sent states: never
 * the mirror, nor the confirmed history.
 */
export async function forEachLocal(
  mirror: Mirror,
  where: { customerKey: string | null; sinceMs: number; untilMs: number },
  unsentOnly: boolean,
  visit: (event: MeterEvent, externalId: string) => void,
): Promise<void> {
  const seam = mirrorSeam(mirror, 'read');
  const db = await seam.connection.get();
  const keys = where.customerKey === null ? null : new Set(await customerKeysFor(db, where.customerKey));
  let records: EventRecord[] = [];
  try {
    const index = db.transaction(EVENTS, 'readonly').objectStore(EVENTS).index(BY_STATUS);
    // A flush's batch is stored `pending` under a claim; `sending` is what versions before batch leases stored.
    for (const status of unsentOnly ? (['pending', 'sending'] as const) : (['pending', 'sending', 'sent'] as const)) {
      records = records.concat(await index.getAll(statusRange(status)));
    }
  } catch (error) {
    throw storageError('read', error);
  }
  for (const r of records) {
    if ((keys === null || keys.has(r.customerKey)) && r.timestampMs >= where.sinceMs && r.timestampMs < where.untilMs) {
      visit({ name: r.name, timestamp: new Date(r.timestampMs), metadata: r.metadata }, r.externalId);
    }
  }
}
