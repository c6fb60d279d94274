/**
 * Structs for the objects the server sends back (`GET /v1/events/`): `create(wireJson, Struct)`
 * returns the camelCase model with Dates. They tolerate what the server may add or leave out, and
 * keep unknown fields (camelCase keys, values as sent). Only the read path imports this module.
 */
import { array, boolean, coerce, date, defaulted, integer, literal, nullable, number, optional, record, string, type, union, unknown } from 'superstruct';
import type { Struct } from 'superstruct';
import { parseIso } from '../validation/structs.js';

/**
 * The server's billing address of a Customer, in camelCase.
 * @example
 * const address: BillingAddress = { city: 'Berlin', country: 'DE' };
 */
export interface BillingAddress {
  line1?: string | null;
  line2?: string | null;
  postalCode?: string | null;
  city?: string | null;
  state?: string | null;
  country: string;
}

/**
 * A Polar Customer in camelCase with Dates (parsed by `CustomerStruct`).
 * @example
 * const customer: Customer = create(wireJson, CustomerStruct);
 */
export interface Customer {
  id: string;
  createdAt: Date;
  modifiedAt: Date | null;
  metadata: Record<string, string | number | boolean>;
  externalId: string | null;
  /** `null` for a team customer created without an email (Polar's Customer schema since 2026-03). */
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  billingAddress: BillingAddress | null;
  taxId: (string | null)[] | null;
  organizationId: string;
  deletedAt: Date | null;
  avatarUrl: string | null;
}

/**
 * A Polar UserEvent in camelCase with Dates (parsed by `UserEventStruct`).
 * @example
 * const event: UserEvent = create(wireJson, UserEventStruct);
 * event.timestamp.getTime();
 */
export interface UserEvent {
  id: string;
  timestamp: Date;
  organizationId: string;
  customerId: string | null;
  customer: Customer | null;
  externalCustomerId: string | null;
  name: string;
  source: 'user';
  metadata: Record<string, string | number | boolean | object>;
  label?: string;
  parentId?: string | null;
  childCount?: number;
  memberId?: string | null;
  externalMemberId?: string | null;
}

/**
 * A Polar SystemEvent (`source: "system"`, e.g. `customer.created`), parsed loosely.
 * @example
 * if (isSystemEvent(item)) { const event: SystemEvent = create(item, SystemEventStruct); }
 */
export interface SystemEvent {
  id: string;
  timestamp: Date;
  name: string;
  source: 'system';
  metadata: Record<string, unknown>;
  organizationId?: string;
  customerId?: string | null;
  externalCustomerId?: string | null;
  [key: string]: unknown;
}

/** A `Date` holding a real time (also a Date of another realm). */
export function isValidDate(value: unknown): value is Date {
  try {
    return Object.prototype.toString.call(value) === '[object Date]' && !Number.isNaN(Date.prototype.getTime.call(value));
  } catch {
    return false;
  }
}

/**
 * The server's ISO 8601 date-time as a Date (its microseconds truncated to milliseconds), or
 * undefined for a naive or impossible time; the grammar is `parseIso`'s, shared with what we send.
 */
export function parseIsoTimestamp(text: string): Date | undefined {
  const parsed = parseIso(text);
  return parsed && new Date(parsed[0]);
}

/** `some_new_field` → `someNewField` (a leading underscore and `_2` stay as they are). */
export function snakeToCamel(key: string): string {
  return key.replace(/_([a-z])/g, (match, c: string, at: number) => (at > 0 && key[at - 1] !== '_' ? c.toUpperCase() : match));
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The wire object with camelCase keys; nullable fields the server left out become `null`, and
 * `dropNull` fields it sent as `null` are left out (their model type is not nullable).
 */
function camelized<T, S>(struct: Struct<T, S>, nullables: string[] = [], dropNull: string[] = []): Struct<T, S> {
  return coerce(struct, unknown(), (wire) => {
    if (!isObject(wire)) return wire;
    const model: Record<string, unknown> = {};
    for (const key of Object.keys(wire)) {
      // A wire "__proto__" key would set the prototype of the model: never a field of Polar's.
      if (key !== '__proto__') model[snakeToCamel(key)] = wire[key];
    }
    for (const key of nullables) model[key] ??= null;
    for (const key of dropNull) if (model[key] === null) delete model[key];
    return model;
  });
}

/** Incoming timestamps: an ISO 8601 string with offset, turned into a `Date` (a Date passes as is). */
const WireDate = coerce(date(), string(), (text) => parseIsoTimestamp(text) ?? text);
const NullableString = nullable(string());
const Scalar = union([string(), number(), boolean()]);

const BillingAddressStruct = camelized(
  type({
    line1: optional(NullableString),
    line2: optional(NullableString),
    postalCode: optional(NullableString),
    city: optional(NullableString),
    state: optional(NullableString),
    country: string(),
  }),
);

/**
 * A Polar Customer: `create(wireJson, CustomerStruct)` returns the camelCase `Customer` with Dates.
 * Unknown extra fields are kept (camelCase keys, values as they are).
 * @example
 * const customer = create({ id: '…', created_at: '2025-01-01T00:00:00Z', email: 'a@b.c', ... }, CustomerStruct);
 */
export const CustomerStruct = camelized(
  type({
    id: string(),
    createdAt: WireDate,
    modifiedAt: nullable(WireDate),
    metadata: record(string(), Scalar),
    externalId: NullableString,
    // Polar's CustomerBase: `email: str | None` (a team customer may have none).
    email: NullableString,
    emailVerified: boolean(),
    name: NullableString,
    billingAddress: nullable(BillingAddressStruct),
    taxId: nullable(array(NullableString)),
    organizationId: string(),
    deletedAt: nullable(WireDate),
    avatarUrl: NullableString,
  }),
  ['modifiedAt', 'externalId', 'email', 'name', 'billingAddress', 'taxId', 'deletedAt', 'avatarUrl'],
) as unknown as Struct<Customer, null>;

/**
 * A Polar UserEvent (`source: "user"`): `create(wireJson, UserEventStruct)` returns the camelCase
 * `UserEvent` with Dates. Tolerates microseconds, `+00:00`, absent or null newer fields; unknown
 * extra fields are kept. Metadata is kept exactly as the server sent it (`_cost.amount` as "150").
 * @example
 * const events = page.items.filter((item) => !isSystemEvent(item)).map((item) => create(item, UserEventStruct));
 */
export const UserEventStruct = camelized(
  type({
    id: string(),
    timestamp: WireDate,
    organizationId: string(),
    customerId: NullableString,
    customer: nullable(CustomerStruct),
    externalCustomerId: NullableString,
    name: string(),
    source: literal('user'),
    metadata: defaulted(record(string(), union([Scalar, type({})])), {}),
    label: optional(string()),
    parentId: optional(NullableString),
    childCount: optional(integer()),
    memberId: optional(NullableString),
    externalMemberId: optional(NullableString),
  }),
  ['customerId', 'customer', 'externalCustomerId'],
  ['label', 'childCount'],
) as unknown as Struct<UserEvent, null>;

/**
 * A Polar SystemEvent (`source: "system"`), parsed loosely; everything else is kept.
 * @example
 * const system = create(item, SystemEventStruct);
 */
export const SystemEventStruct = camelized(
  type({
    id: string(),
    timestamp: WireDate,
    name: string(),
    source: literal('system'),
    metadata: defaulted(record(string(), unknown()), {}),
  }),
) as unknown as Struct<SystemEvent, null>;

/**
 * True for list items the server marks `source: "system"` (they are not UserEvents).
 * @example
 * const userItems = page.items.filter((item) => !isSystemEvent(item));
 */
export function isSystemEvent(value: unknown): value is { source: 'system'; [key: string]: unknown } {
  try {
    return isObject(value) && value['source'] === 'system';
  } catch {
    return false;
  }
}
