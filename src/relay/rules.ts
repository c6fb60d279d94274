/**
 * The security rules of the relay, applied to each event before it joins a window: the customer is
 * the session's, members are set or checked, `external_id` and `parent_id` are scoped per customer.
 *
 * @module
 */
import { validate } from 'superstruct';
import { EventCreateStruct } from '../validation/structs.js';
import type { RelaySession } from './types.js';

/** One entry of a 422 `detail`, in Polar's shape. */
export interface DetailItem {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
}

/** A session in one shape: the customer field and value, the member field and the allowed members. */
export interface Customer {
  /** `ext:<id>` or `cus:<uuid>`: the namespace of this customer's ids. */
  key: string;
  field: 'external_customer_id' | 'customer_id';
  id: string;
  memberField: 'external_member_id' | 'member_id';
  otherMemberField: 'external_member_id' | 'member_id';
  members: string[];
}

const UUID = /^[\da-f]{8}-[\da-f]{4}-[\da-f]{4}-[\da-f]{4}-[\da-f]{12}$/i;
export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value);

/** The session as one `Customer`, or null when `authenticate` returned something unusable. */
export function customerOf(session: RelaySession): Customer | null {
  if (typeof session !== 'object' || session === null) return null;
  if ('externalCustomerId' in session && typeof session.externalCustomerId === 'string' && session.externalCustomerId) {
    const members = (session.externalMemberIds ?? []).filter((m) => typeof m === 'string' && m);
    return {
      key: `ext:${session.externalCustomerId}`,
      field: 'external_customer_id',
      id: session.externalCustomerId,
      memberField: 'external_member_id',
      otherMemberField: 'member_id',
      members,
    };
  }
  if ('customerId' in session && isUuid(session.customerId)) {
    const members = (session.memberIds ?? []).filter(isUuid).map((m) => m.toLowerCase());
    return {
      key: `cus:${session.customerId.toLowerCase()}`,
      field: 'customer_id',
      id: session.customerId.toLowerCase(),
      memberField: 'member_id',
      otherMemberField: 'external_member_id',
      members,
    };
  }
  return null;
}

// A fixed namespace: scoped ids only need to be deterministic and distinct per customer.
const NAMESPACE = Uint8Array.from('6f1c0b9e4d2a4f7e8c3b5a6d9e0f1a2b'.match(/../g)!.map((h) => Number.parseInt(h, 16)));
const encoder = new TextEncoder();

/**
 * The id Polar stores for a device's id: a UUIDv5 of the customer's key and the id, so the same
 * device id always maps to the same Polar `external_id` (resends dedupe) and two customers' ids
 * never meet.
 */
export async function scopedId(customerKey: string, id: string): Promise<string> {
  const name = encoder.encode(`${customerKey}\u0000${id}`);
  const data = new Uint8Array(NAMESPACE.length + name.length);
  data.set(NAMESPACE);
  data.set(name, NAMESPACE.length);
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-1', data));
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = [...hash.subarray(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** One event after the rules: what goes to Polar, or why it is refused. */
export interface Rewritten {
  /** The event for Polar, `parent_id` still the device's (resolved later). */
  event: Record<string, unknown>;
  /** The device's own `parent_id`, if any. */
  parent?: string;
  refusals: DetailItem[];
}

const refusal = (index: number, path: (string | number)[], msg: string, input: unknown): DetailItem => ({
  type: 'value_error',
  loc: ['body', 'events', index, ...path],
  msg,
  input: input ?? null,
});

/**
 * Forces the customer, sets or checks the member, scopes `external_id`, drops `organization_id`
 * and validates the result with the write path's own `EventCreateStruct`.
 */
export async function rewrite(raw: unknown, index: number, customer: Customer): Promise<Rewritten> {
  const source = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const {
    customer_id: _c,
    external_customer_id: _e,
    organization_id: _o,
    member_id: memberId,
    external_member_id: externalMemberId,
    external_id: externalId,
    parent_id: parentId,
    ...rest
  } = source;
  const refusals: DetailItem[] = [];
  const event: Record<string, unknown> = { ...rest, [customer.field]: customer.id };
  // Members are checked, never overwritten: an event of a teammate left on a shared device must not
  // be charged to whoever is signed in now.
  const named = customer.memberField === 'member_id' ? memberId : externalMemberId;
  const other = customer.memberField === 'member_id' ? externalMemberId : memberId;
  if (other != null)
    refusals.push(refusal(index, [customer.otherMemberField], `Send ${customer.memberField}: this session names its members that way.`, other));
  if (named != null) {
    const wanted = typeof named === 'string' && customer.memberField === 'member_id' ? named.toLowerCase() : named;
    if (typeof wanted !== 'string' || !customer.members.includes(wanted)) refusals.push(refusal(index, [customer.memberField], 'Member not found.', named));
    else event[customer.memberField] = wanted;
  } else if (customer.members[0] !== undefined) {
    event[customer.memberField] = customer.members[0];
  }
  if (externalId !== undefined) event['external_id'] = externalId;
  if (parentId !== undefined) event['parent_id'] = parentId;
  const [error] = validate(event, EventCreateStruct);
  for (const failure of error?.failures() ?? []) refusals.push(refusal(index, failure.path, failure.message, failure.value));
  if (refusals.length > 0 || typeof raw !== 'object' || raw === null) {
    if (refusals.length === 0) refusals.push(refusal(index, [], 'Expected an object.', raw));
    return { event, refusals };
  }
  if (typeof externalId === 'string') event['external_id'] = await scopedId(customer.key, externalId);
  const out: Rewritten = { event, refusals };
  if (typeof parentId === 'string') out.parent = parentId;
  return out;
}

/** Whether a Polar event (wire JSON) is this customer's. */
export function belongsTo(event: Record<string, unknown>, customer: Customer): boolean {
  if (customer.field === 'customer_id') return typeof event['customer_id'] === 'string' && event['customer_id'].toLowerCase() === customer.id;
  const nested = event['customer'] as { external_id?: unknown } | null | undefined;
  return event['external_customer_id'] === customer.id || nested?.external_id === customer.id;
}
