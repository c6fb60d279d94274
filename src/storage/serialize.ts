import type { BufferedEvent } from '../types.js';
import type { EventRecord, MirrorRecord } from './schema.js';
import type { TrackInput } from '../validation/structs.js';
import type { EventCreateWire } from '../transport/transport.js';

/**
 * The one serialization boundary: domain objects ⇄ structured-clone-safe records (plain objects,
 * dates as epoch ms), records ⇄ Polar's snake_case wire JSON, and the canonical content
 * fingerprint that matches a server event to the local event that produced it.
 */

export function customerKeyOf(ref: { externalCustomerId?: string | null; customerId?: string | null }): string {
  if (ref.externalCustomerId != null) return `ext:${ref.externalCustomerId}`;
  // Polar's customer ids are UUIDs, stored lower case: a filter (query, meters, clear) typed in upper case names the same customer.
  if (ref.customerId != null) return `cus:${ref.customerId.toLowerCase()}`;
  return 'none:';
}

/**
 * Canonical form of metadata for comparison: keys sorted at every level, `null`/`undefined` fields
 * dropped, `amount` of `_cost` (and of `_llm.cost`) as a number, because the server echoes
 * decimals as strings ("150") and drops or nulls absent optional fields.
 */
export function canonicalMetadata(value: unknown, key?: string, parentKey?: string): unknown {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v) => canonicalMetadata(v));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as object).sort()) {
      // The newest server drops `_llm.cost` (older ones kept it): compare without it.
      if (key === '_llm' && k === 'cost') continue;
      const v = canonicalMetadata((value as Record<string, unknown>)[k], k, key);
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
  if (key === 'amount' && (parentKey === '_cost' || parentKey === 'cost') && typeof value === 'string') {
    const n = Number(value);
    return Number.isFinite(n) ? n : value;
  }
  return value;
}

// Two independent 32-bit multiplicative hashes over the UTF-16 code units: 64 bits in all.
function hash64(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}

/** Content fingerprint: name, customer and member references, timestamp in ms and canonical metadata. */
export function fingerprintOf(event: {
  name: string;
  customerKey: string;
  timestampMs: number;
  metadata: unknown;
  memberId?: string | null | undefined;
  externalMemberId?: string | null | undefined;
}): string {
  const parts: unknown[] = [event.name, event.customerKey, event.timestampMs, canonicalMetadata(event.metadata ?? {}) ?? {}];
  // Only an event with a member adds it (JSON writes an absent one as null): a fingerprint stored
  // before members existed stays valid.
  if (event.memberId ?? event.externalMemberId) parts.push(event.memberId, event.externalMemberId);
  return hash64(JSON.stringify(parts));
}

/** The wire timestamp of a stored event (fixed when it was made; see `EventRecord.wireMs`). */
export const wireMsOf = (record: Pick<EventRecord, 'timestampMs' | 'wireMs'>): number => record.wireMs ?? record.timestampMs;

/** The wire form of a stored event: the same bytes at every send. */
export function toWire(record: EventRecord): EventCreateWire {
  const wire: EventCreateWire = {
    name: record.name,
    timestamp: new Date(wireMsOf(record)).toISOString(),
    external_id: record.externalId,
  };
  if (record.externalCustomerId !== null) wire.external_customer_id = record.externalCustomerId;
  else if (record.customerId !== null) wire.customer_id = record.customerId;
  if (Object.keys(record.metadata).length > 0) wire.metadata = record.metadata;
  if (record.organizationId !== null) wire.organization_id = record.organizationId;
  if (record.memberId) wire.member_id = record.memberId;
  else if (record.externalMemberId) wire.external_member_id = record.externalMemberId;
  if (record.parentId !== null) wire.parent_id = record.parentId;
  return wire;
}

/**
 * UTF-8 size of a string, counted without encoding it (no buffer per event on the track() path).
 * JSON.stringify never leaves a lone surrogate (it escapes them), so a pair is 4 bytes and any other
 * code unit 1 to 3, exactly as TextEncoder would write them.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // the pair's two units already count 2: 4 in all
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** UTF-8 size of a value's JSON (computed once per event, when track() makes its record). */
export function jsonBytes(value: unknown): number {
  return utf8Length(JSON.stringify(value));
}

/** Bytes of `{"events":[` + `]}`, and of each comma between events. */
export const BODY_OVERHEAD_BYTES = 13;

/** Validated track() input (after `defaults`). */
export type NewEventInput = TrackInput;

/**
 * A new `pending` record from validated track() input. `limit` is the latest timestamp the server
 * accepts now (null: unknown): a later one is clamped on the wire, once, here.
 */
export function newRecord(input: NewEventInput, seq: string, now: number, limit: number | null = null): EventRecord {
  const externalCustomerId = input.externalCustomerId ?? null;
  const customerId = externalCustomerId === null ? (input.customerId ?? null) : null;
  const timestampMs = input.timestamp ? input.timestamp.getTime() : now;
  const metadata = input.metadata ?? {};
  const customerKey = customerKeyOf({ externalCustomerId, customerId });
  const record: EventRecord = {
    externalId: input.externalId ?? seq,
    seq,
    name: input.name,
    externalCustomerId,
    customerId,
    organizationId: input.organizationId ?? null,
    memberId: input.memberId ?? null,
    externalMemberId: input.memberId ? null : (input.externalMemberId ?? null),
    metadata,
    timestampMs,
    parentId: input.parentId ?? null,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: 0,
    createdAt: now,
    sentAt: null,
    serverId: null,
    error: null,
    customerKey,
    fingerprint: '',
    bytes: 0,
  };
  return withWireTime(record, limit !== null && timestampMs > limit ? limit : timestampMs);
}

/** The record with its wire timestamp set (and the fingerprint and size that follow from it). */
export function withWireTime(record: EventRecord, wireMs: number): EventRecord {
  // Assigned, never deleted: a deleted key makes a slow (dictionary) object, slower to clone.
  const next: EventRecord = { ...record, fingerprint: fingerprintOf({ ...record, timestampMs: wireMs }) };
  if (wireMs !== record.timestampMs || next.wireMs !== undefined) next.wireMs = wireMs;
  next.bytes = jsonBytes(toWire(next));
  return next;
}

/**
 * Whether a track() input names the event already stored under its externalId: the same content
 * (the time too when the input gave one; a retried track() without one is the same event).
 */
export function sameEvent(stored: EventRecord, record: EventRecord, timeGiven: boolean): boolean {
  const key = (r: EventRecord) =>
    JSON.stringify([r.name, r.customerKey, r.memberId ?? null, r.externalMemberId ?? null, r.organizationId, r.parentId, canonicalMetadata(r.metadata)]);
  return (!timeGiven || stored.timestampMs === record.timestampMs) && key(stored) === key(record);
}

export function toLocalEvent(record: EventRecord): BufferedEvent {
  return {
    externalId: record.externalId,
    name: record.name,
    externalCustomerId: record.externalCustomerId,
    customerId: record.customerId,
    organizationId: record.organizationId,
    memberId: record.memberId ?? null,
    externalMemberId: record.externalMemberId ?? null,
    metadata: record.metadata,
    timestamp: new Date(record.timestampMs),
    parentId: record.parentId,
    status: record.status,
    attempts: record.attempts,
    createdAt: new Date(record.createdAt),
    serverId: record.serverId,
    error: record.error,
    nextAttemptAt: record.nextAttemptAt > 0 ? new Date(record.nextAttemptAt) : null,
    sentAt: record.sentAt === null ? null : new Date(record.sentAt),
  };
}

/** Date-typed fields of the UserEvent/Customer model, stored as epoch ms in the mirror. */
const DATE_FIELDS = new Set(['timestamp', 'createdAt', 'modifiedAt', 'deletedAt']);

/** UserEvent model (with Dates) → structured-clone-safe object (Dates as epoch ms). */
export function toStorable(value: unknown, key?: string): unknown {
  // Metadata is user data (already clone-safe): never reinterpret its keys as model fields.
  if (key === 'metadata') return value;
  if (value instanceof Date) return value.getTime();
  if (Array.isArray(value)) return value.map((v) => toStorable(v));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toStorable(v, k);
    return out;
  }
  return value;
}

/** Inverse of toStorable for the model's known date fields. */
export function fromStorable(value: unknown, key?: string): unknown {
  if (key === 'metadata') return value;
  if (key !== undefined && DATE_FIELDS.has(key) && typeof value === 'number') return new Date(value);
  if (Array.isArray(value)) return value.map((v) => fromStorable(v));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromStorable(v, k);
    return out;
  }
  return value;
}

export function mirrorEventOf(record: MirrorRecord): Record<string, unknown> {
  return fromStorable(record.event) as Record<string, unknown>;
}
