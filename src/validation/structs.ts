/**
 * The structs of what the write path sends: `TrackInputStruct` (the camelCase input of `track()`),
 * `EventCreateStruct` (Polar's snake_case `EventCreate`) and `MetadataStruct`, built from
 * Superstruct's combinators. The rules are the newest Polar server's (server/polar/event/schemas.py,
 * server/polar/kit/schemas.py), stricter only where the server would silently drop or mangle data.
 */
import { define, intersection, object, optional, Struct } from 'superstruct';

/**
 * The reserved `_cost` value: `amount` in cents (at most 12 decimal places, under 100,000).
 * @example
 * const cost: CostMetadata = { amount: 0.25, currency: 'usd' };
 */
export interface CostMetadata {
  amount: number;
  currency: 'usd';
}

/**
 * The reserved `_llm` value (`cost` only for older servers: the newest one drops it).
 * @example
 * const llm: LlmMetadata = { vendor: 'openai', model: 'gpt-4o', input_tokens: 10, output_tokens: 5, total_tokens: 15 };
 */
export interface LlmMetadata {
  vendor: string;
  model: string;
  prompt?: string | null;
  response?: string | null;
  input_tokens: number;
  cached_input_tokens?: number;
  output_tokens: number;
  total_tokens: number;
  cost?: CostMetadata;
}

/**
 * One metadata value: a string, a number, a boolean, or the reserved `_cost`/`_llm` objects.
 * @example
 * const value: MetadataValue = { amount: 150, currency: 'usd' }; // a _cost value
 */
export type MetadataValue = string | number | boolean | CostMetadata | LlmMetadata;

/**
 * Polar event metadata. `_cost` and `_llm` are the only object values.
 * @example
 * const metadata: Metadata = { tokens: 1200, model: 'small', cached: false, _cost: { amount: 3, currency: 'usd' } };
 */
export type Metadata = Record<string, MetadataValue>;

/** The input of `buffer.track()`, as validated (before `defaults`: one customer reference). */
export interface TrackInput {
  name: string;
  externalCustomerId?: string;
  customerId?: string;
  memberId?: string;
  externalMemberId?: string;
  metadata?: Metadata;
  timestamp?: Date;
  externalId?: string;
  parentId?: string;
  organizationId?: string;
}

/**
 * The outgoing `EventCreate` of `POST /v1/events/ingest`.
 * @example
 * const event: EventCreate = create({ name: 'api_call', external_customer_id: 'user_42' }, EventCreateStruct);
 */
export interface EventCreate {
  name: string;
  customer_id?: string;
  external_customer_id?: string;
  member_id?: string;
  external_member_id?: string;
  timestamp?: string;
  metadata?: Metadata;
  organization_id?: string;
  external_id?: string;
  parent_id?: string;
}

/** A plain object: its prototype is `Object.prototype` (of any realm) or null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** A received value in a message, without running its code where that can be avoided. */
function show(value: unknown): string {
  try {
    if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    return isPlainObject(value) ? 'an object' : String(value);
  } catch {
    return 'an unprintable value';
  }
}

/** Values that pass `test`, else "Expected `expected`, but received …" (one `define`, no refine layer). */
const is = <T>(name: string, test: (value: any) => boolean, expected: string): Struct<T, null> =>
  define<T>(name, (value) => test(value) || `Expected ${expected}, but received ${show(value)}`);

/** Characters as the server counts them: code points, not UTF-16 units. */
const chars = (text: string): number => {
  let n = 0;
  for (const _ of text) n++;
  return n;
};

/** A string without NUL (the server refuses it anywhere) of `min` to `max` characters (or null if `orNull`). */
const text = (max = Infinity, min = 1, orNull = false): Struct<string, null> =>
  define('text', (value) =>
    orNull && value === null
      ? true
      : typeof value !== 'string'
        ? `Expected a string, but received ${show(value)}`
        : value.includes('\u0000')
          ? `Expected no NUL (\\u0000), but received ${show(value)}`
          : value.length < min
            ? 'Expected a non-empty string, but received ""'
            : // Code points are at most UTF-16 units: count them only when the units pass the limit.
              value.length <= max || chars(value) <= max || `Expected at most ${max} characters, but received ${chars(value)}`,
  );

// The server's ids are UUID4 (pydantic refuses other versions).
const Uuid = is<string>(
  'uuid',
  (value) => typeof value === 'string' && /^[\da-f]{8}-[\da-f]{4}-4[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/i.test(value),
  'a UUID v4',
);
const Int = is<number>('safe', Number.isSafeInteger, 'a safe integer');

/** Digits after the point in the shortest form of `n`, which is what JSON carries to the server. */
const decimals = (n: number): number => {
  const [mantissa = '', exponent = '0'] = String(n).split('e');
  return Math.max(0, (mantissa.split('.')[1] ?? '').length - Number(exponent));
};

// The server's Decimal(max_digits=17, decimal_places=12): at most 5 digits before the point.
const Amount = define<number>('amount', (n) =>
  typeof n !== 'number' || !Number.isFinite(n)
    ? `Expected a finite number, but received ${show(n)}`
    : Math.abs(n) >= 1e5
      ? `Expected less than 100000 cents, but received ${n}`
      : decimals(n) <= 12 || `Expected at most 12 decimal places, but received ${n}`,
);

const Cost = object({ amount: Amount, currency: is<'usd'>('usd', (value) => value === 'usd', '"usd"') });
const Str = text(Infinity, 0);
const StrOrNull = text(Infinity, 0, true) as Struct<string | null, null>;
const Llm = object({
  vendor: Str,
  model: Str,
  prompt: optional(StrOrNull),
  response: optional(StrOrNull),
  input_tokens: Int,
  cached_input_tokens: optional(Int),
  output_tokens: Int,
  total_tokens: Int,
  cost: optional(Cost),
});

const MetaText = text(500);
const Bool = is<boolean>('boolean', (value) => typeof value === 'boolean', 'a boolean');
const Num = define<number>(
  'finite',
  (n) =>
    (typeof n === 'number' && Number.isFinite(n) && (Number.isSafeInteger(n) || !Number.isInteger(n))) ||
    `Expected a finite number (integers within ±2^53), but received ${show(n)}`,
);
const NotScalar = define<any>('metadata value', (value) => `Expected a string, number or boolean, but received ${show(value)}`);
// Keys that could pollute prototypes where metadata is later merged carelessly, the empty key, and NUL.
const BadKey = define<any>(
  'metadata key',
  (_, ctx) => `Expected a key without NUL other than "", __proto__, constructor, prototype, but received ${show(ctx.path.at(-1))}`,
);

/** The struct of one metadata entry, by its key (reserved keys) and the type of its value. */
function metadataValue(key: string, value: unknown): Struct<any, any> {
  if (!key || key.includes('\u0000') || ['__proto__', 'constructor', 'prototype'].includes(key)) return BadKey;
  if (key === '_cost') return Cost;
  if (key === '_llm') return Llm;
  const kind = typeof value;
  return kind === 'string' ? MetaText : kind === 'number' ? Num : kind === 'boolean' ? Bool : NotScalar;
}

/**
 * Polar event metadata: a plain object whose values are strings of 1-500 characters without NUL,
 * finite numbers (safe integers) or booleans; `_cost` and `_llm` must have their reserved shapes.
 * @example
 * assert({ tokens: 12 }, MetadataStruct); // throws a StructError for { tokens: null }
 */
export const MetadataStruct = new Struct<Metadata, null>({
  type: 'record',
  schema: null,
  // record() with a struct per entry chosen by its key and value; record() alone would also run
  // one on each key, and dynamic() would choose three times: a third of track()'s validation.
  *entries(value) {
    if (isPlainObject(value)) for (const key in value) yield [key, value[key], metadataValue(key, value[key])];
  },
  validator: (value) => isPlainObject(value) || `Expected a plain object, but received ${show(value)}`,
});

/**
 * Exactly one customer reference; at most one member reference, of the customer's kind (the server
 * reads `member_id` only beside `customer_id` and `external_member_id` only beside
 * `external_customer_id`, and silently drops the other).
 */
function referencing<T, S>(struct: Struct<T, S>, external: string, id: string, externalMember: string, member: string): Struct<T, S> {
  // One validator for the whole object (as `intersection` with a `define`, without its layers).
  return new Struct<T, S>({
    ...struct,
    *validator(value, ctx) {
      if (!isPlainObject(value)) return yield `Expected a plain object, but received ${show(value)}`;
      const has = (key: string): boolean => value[key] !== undefined;
      const at = (key: string, message: string) => ({ path: [...ctx.path, key], key, value: value[key], message });
      if (has(external) === has(id)) {
        const message = `Expected one of ${external} or ${id}, but received ${has(id) ? 'both' : 'neither'}`;
        yield at(external, message);
        yield at(id, message);
      }
      if (has(externalMember) && has(member)) {
        const message = `Expected at most one of ${externalMember} or ${member}, but received both`;
        yield at(externalMember, message);
        yield at(member, message);
      } else if (has(externalMember) && !has(external) && has(id)) {
        yield at(externalMember, `Expected ${externalMember} beside ${external}, but received it beside ${id}`);
      } else if (has(member) && !has(id) && has(external)) {
        yield at(member, `Expected ${member} beside ${id}, but received it beside ${external}`);
      }
    },
  });
}

const ISO_RE = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?(?:[Zz]|([+-])(\d\d):?(\d\d))$/;

/**
 * The one parser of ISO 8601 date-times, for what we send and what Polar sends back: an offset
 * written `Z`, `±hh:mm` or `±hhmm` (as Polar's pydantic takes them), any fraction of a second.
 * Gives the epoch milliseconds and the microseconds beyond them (Polar keeps microseconds), or
 * undefined for a naive or impossible time.
 */
export function parseIso(text: string): [ms: number, micros: number] | undefined {
  const m = ISO_RE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '', sign, oh = '0', om = '0'] = m as unknown as string[];
  const date = new Date(0);
  date.setUTCFullYear(+y!, +mo! - 1, +d!);
  // The Date rolls an impossible day (02-30) over: compare to catch it.
  if (date.getUTCMonth() !== +mo! - 1 || date.getUTCDate() !== +d! || +h! > 23 || +mi! > 59 || +s > 59 || +oh > 23 || +om > 59) return undefined;
  const digits = `${frac}000000`;
  const ms = date.setUTCHours(+h!, +mi!, +s, +digits.slice(0, 3)) - (sign === '-' ? -1 : 1) * (+oh * 60 + +om) * 60_000;
  return Number.isNaN(ms) ? undefined : [ms, +digits.slice(3, 6)];
}

/**
 * The outgoing `EventCreate` of `POST /v1/events/ingest`, as the newest Polar server takes it
 * (exactly one customer reference, at most one member reference of the same kind).
 * @example
 * // A backend that receives events from browsers:
 * const [error, event] = validate(body.events[0], EventCreateStruct);
 */
// Pure: an app that does not import it does not bundle it (the buffer never uses it).
export const EventCreateStruct = /* @__PURE__ */ referencing(
  /* @__PURE__ */ object({
    name: /* @__PURE__ */ text(128),
    customer_id: /* @__PURE__ */ optional(Uuid),
    external_customer_id: /* @__PURE__ */ optional(/* @__PURE__ */ text()),
    member_id: /* @__PURE__ */ optional(Uuid),
    external_member_id: /* @__PURE__ */ optional(/* @__PURE__ */ text()),
    timestamp: /* @__PURE__ */ optional(
      /* @__PURE__ */ is<string>('iso', (value) => typeof value === 'string' && !!parseIso(value), 'an ISO 8601 date-time with "Z" or "±hh:mm"'),
    ),
    metadata: /* @__PURE__ */ optional(MetadataStruct),
    organization_id: /* @__PURE__ */ optional(Uuid),
    external_id: /* @__PURE__ */ optional(/* @__PURE__ */ text(256)),
    parent_id: /* @__PURE__ */ optional(/* @__PURE__ */ text()),
  }),
  'external_customer_id',
  'customer_id',
  'external_member_id',
  'member_id',
) as unknown as Struct<EventCreate, null>;

/**
 * The `track()` input struct; with `metadataSchema` (the buffer's `schemas[eventName]`) the
 * metadata must pass it too, its coercion first, its failures under `metadata`.
 */
export function createTrackInputStruct(metadataSchema?: Struct<any, any>): Struct<TrackInput, null> {
  return referencing(
    object({
      name: text(128),
      externalCustomerId: optional(text()),
      customerId: optional(Uuid),
      memberId: optional(Uuid),
      externalMemberId: optional(text()),
      metadata: optional(metadataSchema ? intersection([metadataSchema, MetadataStruct]) : MetadataStruct),
      timestamp: optional(is<Date>('date', (value) => value instanceof Date && !Number.isNaN(value.getTime()), 'a valid Date')),
      externalId: optional(text(256)),
      parentId: optional(text()),
      organizationId: optional(Uuid),
    }),
    'externalCustomerId',
    'customerId',
    'externalMemberId',
    'memberId',
  ) as unknown as Struct<TrackInput, null>;
}

/**
 * The camelCase input of `buffer.track()` (before `defaults` are applied: one customer reference).
 * @example
 * is({ name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 1 } }, TrackInputStruct); // true
 */
export const TrackInputStruct = createTrackInputStruct();
