import type { Matcher, MirrorItem } from '../storage/mirror-store.js';
import { confirmedBy } from '../storage/queue.js';
import type { EventRecord } from '../storage/schema.js';
import { customerKeyOf, fingerprintOf, toStorable } from '../storage/serialize.js';
import { parseIso } from '../validation/structs.js';
import type { UserEvent } from './structs.js';

/**
 * Pure matching of server UserEvents to the local events that produced them. Polar never returns
 * `external_id`, so a server event is recognised by its content: name, customer reference,
 * timestamp to the millisecond and canonical metadata (see `fingerprintOf` in serialize.ts, which
 * tolerates reordered keys, `_cost.amount` as a decimal string and `null` optional fields).
 */

/**
 * Microseconds since the epoch of a wire timestamp. The model's Date keeps milliseconds; the
 * server's microseconds matter for the cursor, since `start_timestamp` compares them.
 */
export function wireMicros(wire: unknown, fallback: Date): number {
  const base = fallback.getTime() * 1000;
  if (typeof wire !== 'string') return base;
  const parsed = parseIso(wire);
  return parsed ? parsed[0] * 1000 + parsed[1] : base;
}

/** `2025-06-02T14:03:07.123456Z` from microseconds since the epoch. */
export function formatMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const fraction = String(((micros % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** The customer keys of a server event: under its external id and under Polar's customer id. */
export function customerKeysOf(event: UserEvent): string[] {
  const keys: string[] = [];
  const external = event.externalCustomerId ?? event.customer?.externalId ?? null;
  const id = event.customerId ?? event.customer?.id ?? null;
  if (external !== null) keys.push(customerKeyOf({ externalCustomerId: external }));
  if (id !== null) keys.push(customerKeyOf({ customerId: id }));
  if (keys.length === 0) keys.push(customerKeyOf({}));
  return keys;
}

/**
 * Builds the mirror record of a validated UserEvent. `wireTimestamp` is the item's raw
 * `timestamp` (for microseconds). Its fingerprints cover each customer key it carries, because the
 * local event was tracked with one of them (externalCustomerId or customerId), each with each of
 * its members, and without one: a relay sets the session's member on an event tracked without.
 */
export function prepareServerEvent(event: UserEvent, wireTimestamp: unknown): MirrorItem {
  const customerKeys = customerKeysOf(event);
  const timestampMs = event.timestamp.getTime();
  const members = [{}, { memberId: event.memberId }, { externalMemberId: event.externalMemberId }];
  const fingerprints = [
    ...new Set(
      customerKeys.flatMap((customerKey) =>
        members.map((member) => fingerprintOf({ name: event.name, customerKey, timestampMs, metadata: event.metadata, ...member })),
      ),
    ),
  ];
  return {
    record: {
      id: event.id,
      timestampMs,
      name: event.name,
      customerKey: customerKeys[0]!,
      fingerprints,
      event: toStorable(event) as Record<string, unknown>,
    },
    timestampMicros: wireMicros(wireTimestamp, event.timestamp),
    customerKeys,
  };
}

/** Whether a local event names a member (its fingerprint then matches only that member's copies). */
const hasMember = (record: EventRecord): boolean => !!(record.memberId ?? record.externalMemberId);

/**
 * Which local event a server event confirms: a `sent` one (an ingest answer covered it), one of
 * the server event's member before one without a member, the oldest first. A waiting or in-flight
 * event is never one, even with the same content: that copy may be another device's twin, and only
 * the event's own ingest answer may move it.
 */
export function chooseCandidate(candidates: readonly EventRecord[]): EventRecord | undefined {
  let best: EventRecord | undefined;
  for (const candidate of candidates) {
    if (candidate.status !== 'sent') continue;
    const better = best === undefined || (hasMember(candidate) === hasMember(best) ? candidate.seq < best.seq : hasMember(candidate));
    if (better) best = candidate;
  }
  return best;
}

/** The local record once a server event confirmed it. */
export const confirm = confirmedBy;

/** Deep equality of two structured-clone-safe values, ignoring key order. */
export function sameContent(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => sameContent(v, bb[i]));
  }
  const ak = Object.keys(a);
  const bk = Object.keys(b);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => Object.hasOwn(b, k) && sameContent((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The rules applyPage follows. */
export const matcher: Matcher = { choose: chooseCandidate, confirm, same: sameContent };
