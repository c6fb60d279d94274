/**
 * Superstruct structs for everything that crosses a boundary:
 *
 * - `TrackInputStruct` / `createTrackInputStruct()`: the camelCase input of `buffer.track()`.
 * - `EventCreateStruct`: the outgoing snake_case `EventCreate` of Polar's ingest endpoint.
 * - `MetadataStruct`: Polar event metadata (shared by both of the above).
 * - `UserEventStruct`, `CustomerStruct`, `SystemEventStruct`: incoming wire JSON (snake_case) parsed
 *   with `create()` into the camelCase model with `Date`s.
 *
 * All structs here are built from `new Struct()` / `define()` with our own messages, so that a
 * message never calls `toString()` on the received value (which throws for `Object.create(null)`
 * and can run user code for Proxies and class instances). Every message says what was expected and
 * describes what was received.
 */
import { Struct, define } from 'superstruct';
import type { Context, Failure } from 'superstruct';

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

type Entry = [string | number, unknown, Struct<any> | Struct<never>];

/** Keys that could pollute prototypes when an object is later copied or merged carelessly. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const hasOwn = (object: object, key: string): boolean => Object.prototype.hasOwnProperty.call(object, key);

/**
 * A plain object: its prototype is `Object.prototype` or `null` (also an `Object.prototype` of
 * another realm, e.g. an iframe). Arrays, Dates, Maps and class instances are not plain.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === null || proto === Object.prototype) return true;
  // An Object.prototype of another realm: its own prototype is null and its constructor is `Object`.
  if (typeof proto !== 'object' || Object.getPrototypeOf(proto) !== null) return false;
  const ctor: unknown = (proto as { constructor?: unknown }).constructor;
  return typeof ctor === 'function' && ctor.name === 'Object';
}

/** A `Date` holding a real time (also a Date of another realm). */
export function isValidDate(value: unknown): value is Date {
  if (typeof value !== 'object' || value === null) return false;
  if (!(value instanceof Date) && Object.prototype.toString.call(value) !== '[object Date]') return false;
  try {
    return !Number.isNaN(Date.prototype.getTime.call(value));
  } catch {
    return false;
  }
}

/** Characters as the server counts them (Unicode code points, not UTF-16 units). */
export function countCharacters(value: string): number {
  if (value.length <= 1) return value.length;
  let count = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

function preview(value: string): string {
  const short = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(short);
}

/** Describes a received value in words, without ever running code of the value. */
export function describeValue(value: unknown): string {
  try {
    switch (typeof value) {
      case 'undefined':
        return 'undefined (nothing)';
      case 'string': {
        if (value.length === 0) return 'an empty string';
        if (value.includes('\u0000')) return `a string containing NUL (\\u0000): ${preview(value)}`;
        const n = countCharacters(value);
        return `a string of ${n} character${n === 1 ? '' : 's'}: ${preview(value)}`;
      }
      case 'number':
        if (Number.isNaN(value)) return 'NaN';
        if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
        if (Number.isInteger(value) && !Number.isSafeInteger(value)) return `the unsafe integer ${value}`;
        return `the number ${value}`;
      case 'boolean':
        return `the boolean ${value}`;
      case 'bigint':
        return `a bigint (${value}n)`;
      case 'symbol':
        return 'a symbol';
      case 'function':
        return 'a function';
      default:
        break;
    }
    if (value === null) return 'null';
    if (Array.isArray(value)) return 'an array';
    if (isPlainObject(value)) return 'an object';
    if (Object.prototype.toString.call(value) === '[object Date]') {
      return isValidDate(value) ? 'a Date' : 'an invalid Date';
    }
    const proto: unknown = Object.getPrototypeOf(value);
    const ctor: unknown = proto === null || typeof proto !== 'object' ? undefined : (proto as { constructor?: unknown }).constructor;
    const name = typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name !== '' ? ctor.name : undefined;
    return name === undefined ? 'an object' : `an instance of ${name}`;
  } catch {
    return 'an unreadable value';
  }
}

function expected(what: string, value: unknown): string {
  return `Expected ${what}, but received ${describeValue(value)}`;
}

/** A leaf struct: `check` decides, the message says `what` is expected. */
function leaf<T>(type: string, what: string, check: (value: unknown) => boolean): Struct<T, null> {
  return define<T>(type, (value) => check(value) || expected(what, value));
}

/** `struct`, or exactly `allowed`: `undefined` makes it optional, `null` nullable. */
function orValue<T, S, A extends undefined | null>(struct: Struct<T, S>, allowed: A): Struct<T | A, S> {
  return new Struct<T | A, S>({
    ...(struct as unknown as Struct<T | A, S>),
    validator: (value, ctx) => value === allowed || struct.validator(value, ctx),
    refiner: (value, ctx) => value === allowed || struct.refiner(value as T, ctx),
  });
}

const optionalStruct = <T, S>(struct: Struct<T, S>): Struct<T | undefined, S> => orValue(struct, undefined);
const nullableStruct = <T, S>(struct: Struct<T, S>): Struct<T | null, S> => orValue(struct, null);

function unknownKeyStruct(key: string, known: readonly string[]): Struct<unknown, null> {
  const shown = key.length > 60 ? `${key.slice(0, 60)}…` : key;
  return define<unknown>(
    'never',
    () => `Unknown key ${JSON.stringify(shown)} is not allowed: expected only ${known.join(', ')}`,
  );
}

/**
 * Sets `out[key] = value` as a plain own data property: defineProperty for "__proto__", so that an
 * own "__proto__" key stays a plain data property instead of replacing the prototype.
 */
export function setOwn(out: object, key: string, value: unknown): void {
  // Only `__proto__` is an accessor on Object.prototype: every other key assigned to a fresh plain
  // object becomes an own data property, and assignment is several times cheaper than
  // defineProperty on the track() path (issue 6).
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else (out as Record<string, unknown>)[key] = value;
}

function copyOwnEnumerable(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) setOwn(out, key, value[key]);
  return out;
}

type Schema = Record<string, Struct<any, any>>;

/**
 * A plain object (anything else fails with "Expected `what`"), copied before its entries are
 * checked. `entries` yields the checks of its properties; `toModel` (incoming wire JSON) replaces
 * the copy; `extra` adds checks on the whole object (they run even when a property fails, so that
 * every failure is reported at once).
 */
function plainObject<T>(
  type: string,
  what: string,
  entries: (value: Record<string, unknown>) => Iterable<Entry>,
  toModel: (value: Record<string, unknown>) => unknown = copyOwnEnumerable,
  extra?: (value: Record<string, unknown>, ctx: Context) => Iterable<Partial<Failure> | string>,
): Struct<T, null> {
  return new Struct<T, null>({
    type,
    schema: null,
    coercer: (value) => (isPlainObject(value) ? toModel(value) : value),
    *entries(value): Iterable<Entry> {
      if (isPlainObject(value)) yield* entries(value);
    },
    *validator(value, ctx): Iterable<Partial<Failure> | string> {
      if (!isPlainObject(value)) yield expected(what, value);
      else if (extra) yield* extra(value, ctx);
    },
  });
}

/** Yields the checks of the keys of `schema`; with `strict`, refuses other keys by name. */
function schemaEntries(schema: Schema, strict: boolean): (value: Record<string, unknown>) => Iterable<Entry> {
  const known = Object.keys(schema);
  return function* (value) {
    for (const key of known) yield [key, value[key], schema[key] as Struct<any>];
    if (strict) {
      for (const key of Object.keys(value)) {
        if (!hasOwn(schema, key)) yield [key, value[key], unknownKeyStruct(key, known)];
      }
    }
  };
}

/** A plain object with exactly these keys: unknown keys are refused with a message naming them. */
function strictObject<T>(
  type: string,
  what: string,
  schema: Schema,
  extra?: (value: Record<string, unknown>, ctx: Context) => Iterable<Partial<Failure> | string>,
): Struct<T, null> {
  return plainObject<T>(type, what, schemaEntries(schema, true), undefined, extra);
}

/**
 * A plain object of incoming wire JSON with at least these keys (other keys are tolerated and
 * kept); `toModel` turns the wire object into the camelCase model before it is checked.
 */
function looseObject<T>(
  type: string,
  what: string,
  schema: Schema,
  toModel: (value: Record<string, unknown>) => unknown,
): Struct<T, null> {
  return plainObject<T>(type, what, schemaEntries(schema, false), toModel);
}

/** A plain object every value of which passes `valueFor(key)`. */
function recordOf<T>(type: string, what: string, valueFor: (key: string) => Struct<any, any>): Struct<T, null> {
  return plainObject<T>(type, what, function* (value) {
    for (const key of Object.keys(value)) yield [key, value[key], valueFor(key)];
  });
}

/**
 * "Exactly one of a or b": both or neither gives one failure at EACH of the two paths, each
 * message naming both keys.
 */
function* exactlyOne(
  value: Record<string, unknown>,
  ctx: Context,
  a: { key: string; what: string },
  b: { key: string; what: string },
  hint = '',
): Iterable<Partial<Failure>> {
  const hasA = value[a.key] !== undefined;
  const hasB = value[b.key] !== undefined;
  if (hasA && hasB) {
    const message = `Expected exactly one of ${a.key} or ${b.key}, but received both (the server would silently ignore ${a.key}); remove one of them`;
    for (const key of [a.key, b.key]) {
      yield { path: [...ctx.path, key], key, value: value[key], message };
    }
  } else if (!hasA && !hasB) {
    const message = `Expected exactly one of ${a.key} (${a.what}) or ${b.key} (${b.what}), but received neither${hint}`;
    for (const key of [a.key, b.key]) {
      yield { path: [...ctx.path, key], key, value: undefined, message };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const hasNul = (value: string): boolean => value.includes('\u0000');

function stringStruct(what: string, minChars: number, maxChars: number): Struct<string, null> {
  return leaf<string>('string', what, (value) => {
    if (typeof value !== 'string' || hasNul(value)) return false;
    if (value.length < minChars) return false;
    if (value.length <= maxChars) return true;
    return countCharacters(value) <= maxChars;
  });
}

export const NAME_MAX_CHARS = 128;
export const EXTERNAL_ID_MAX_CHARS = 256;
export const METADATA_STRING_MAX_CHARS = 500;

const NameStruct = stringStruct(
  `a non-empty string of at most ${NAME_MAX_CHARS} characters without NUL (the server stores at most ${NAME_MAX_CHARS})`,
  1,
  NAME_MAX_CHARS,
);
const UuidStruct = leaf<string>(
  'uuid',
  'a UUID string such as "9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11"',
  (value) => typeof value === 'string' && UUID_RE.test(value),
);
const NonEmptyStringStruct = stringStruct('a non-empty string without NUL', 1, Number.POSITIVE_INFINITY);
const ExternalIdStruct = stringStruct(
  `a non-empty string of at most ${EXTERNAL_ID_MAX_CHARS} characters without NUL`,
  1,
  EXTERNAL_ID_MAX_CHARS,
);
const FiniteNumberStruct = leaf<number>('number', 'a finite number', (value) => typeof value === 'number' && Number.isFinite(value));
const IntegerStruct = leaf<number>('integer', 'a safe integer', (value) => typeof value === 'number' && Number.isSafeInteger(value));
const StringStruct = leaf<string>('string', 'a string', (value) => typeof value === 'string');
const BooleanStruct = leaf<boolean>('boolean', 'a boolean', (value) => typeof value === 'boolean');

function literalStruct<L extends string>(constant: L): Struct<L, null> {
  return leaf<L>('literal', JSON.stringify(constant), (value) => value === constant);
}

/** A valid `Date` object. */
export const DateStruct: Struct<Date, null> = leaf<Date>('date', 'a valid Date', isValidDate);

// ---------------------------------------------------------------------------------------------
// ISO 8601 timestamps
// ---------------------------------------------------------------------------------------------

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO 8601 date-time. `strict` (outgoing) requires seconds-or-minutes precision and an
 * offset written `Z` or `±hh:mm`; otherwise (incoming) `±hhmm` and `±hh` are tolerated too.
 * Fractions beyond milliseconds (the server's microseconds) are truncated. Returns undefined when
 * the text is not a real date-time with an offset.
 */
export function parseIsoTimestamp(text: string, strict = false): Date | undefined {
  const m = ISO_RE.exec(text);
  if (!m) return undefined;
  const [, ys, mos, ds, hs, mis, ss, frac, offset] = m as unknown as [string, string, string, string, string, string, string | undefined, string | undefined, string | undefined];
  if (offset === undefined) return undefined; // a naive time: the server cannot place it
  let offsetMinutes = 0;
  if (offset !== 'Z' && offset !== 'z') {
    if (strict && !/^[+-]\d{2}:\d{2}$/.test(offset)) return undefined;
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const hour = Number(hs);
  const minute = Number(mis);
  const second = ss === undefined ? 0 : Number(ss);
  const ms = frac === undefined ? 0 : Number(`${frac}00`.slice(0, 3));
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined; // e.g. 02-30
  date.setUTCHours(hour, minute, second, ms);
  const time = date.getTime() - offsetMinutes * 60_000;
  return Number.isFinite(time) ? new Date(time) : undefined;
}

const IsoTimestampStringStruct = leaf<string>(
  'iso-timestamp',
  'an ISO 8601 date-time string with an offset ("Z" or "+hh:mm"), e.g. "2025-06-02T14:03:07.123Z"',
  (value) => typeof value === 'string' && parseIsoTimestamp(value, true) !== undefined,
);

/** Incoming timestamps: a `Date`, or an ISO 8601 string with offset that `create()` turns into one. */
const WireDateStruct: Struct<Date, null> = new Struct<Date, null>({
  type: 'date',
  schema: null,
  coercer: (value) => {
    if (typeof value !== 'string') return value;
    return parseIsoTimestamp(value) ?? value;
  },
  validator: (value) => isValidDate(value) || expected('an ISO 8601 date-time with an offset (or a valid Date)', value),
});

// ---------------------------------------------------------------------------------------------
// Metadata (outgoing)
// ---------------------------------------------------------------------------------------------

export interface CostMetadata {
  amount: number;
  currency: 'usd';
}

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

const METADATA_VALUE_WHAT = `a string of 1-${METADATA_STRING_MAX_CHARS} characters without NUL, an integer, a finite number or a boolean`;

/** One metadata value other than the reserved keys. */
export const MetadataValueStruct: Struct<string | number | boolean, null> = leaf<string | number | boolean>(
  'metadata-value',
  METADATA_VALUE_WHAT,
  (value) => {
    switch (typeof value) {
      case 'string':
        return (
          value.length >= 1 &&
          !hasNul(value) &&
          (value.length <= METADATA_STRING_MAX_CHARS || countCharacters(value) <= METADATA_STRING_MAX_CHARS)
        );
      case 'number':
        return Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value));
      case 'boolean':
        return true;
      default:
        return false;
    }
  },
);

/** The reserved `_cost` value (and `_llm.cost`). */
export const CostStruct: Struct<CostMetadata, null> = strictObject<CostMetadata>(
  'cost',
  '{ amount: a finite number, currency: "usd" } (a plain object)',
  {
    amount: FiniteNumberStruct,
    currency: literalStruct('usd'),
  },
);

const OptionalNullableString = optionalStruct(nullableStruct(StringStruct));

/** The reserved `_llm` value. */
export const LlmStruct: Struct<LlmMetadata, null> = strictObject<LlmMetadata>(
  'llm',
  '{ vendor, model, prompt?, response?, input_tokens, cached_input_tokens?, output_tokens, total_tokens, cost? } (a plain object)',
  {
    vendor: StringStruct,
    model: StringStruct,
    prompt: OptionalNullableString,
    response: OptionalNullableString,
    input_tokens: IntegerStruct,
    cached_input_tokens: optionalStruct(IntegerStruct),
    output_tokens: IntegerStruct,
    total_tokens: IntegerStruct,
    cost: optionalStruct(CostStruct),
  },
);

function forbiddenKeyStruct(key: string): Struct<unknown, null> {
  return define<unknown>(
    'never',
    () => `The metadata key ${JSON.stringify(key)} is refused (it could pollute object prototypes); use another key`,
  );
}

const EmptyKeyStruct = define<unknown>('never', () => 'Expected a non-empty metadata key, but received an empty key ""');

function metadataValueStructFor(key: string): Struct<any, any> {
  if (key === '') return EmptyKeyStruct;
  if (FORBIDDEN_KEYS.has(key)) return forbiddenKeyStruct(key);
  if (key === '_cost') return CostStruct;
  if (key === '_llm') return LlmStruct;
  return MetadataValueStruct;
}

/**
 * Polar event metadata: a plain object whose values are strings of 1-500 characters without NUL,
 * safe integers, finite numbers or booleans; `_cost` and `_llm` must have their reserved shapes.
 * @example
 * assert({ tokens: 12 }, MetadataStruct); // throws a StructError for { tokens: null }
 */
export const MetadataStruct: Struct<Metadata, null> = recordOf<Metadata>(
  'metadata',
  `a plain object of metadata (each value ${METADATA_VALUE_WHAT}, or the reserved _cost/_llm objects)`,
  metadataValueStructFor,
);

/** Metadata that must pass `MetadataStruct` AND a user-supplied struct (its coercion runs first). */
export function metadataWithSchema(schema: Struct<any, any>): Struct<Metadata, null> {
  return new Struct<Metadata, null>({
    type: 'metadata',
    schema: null,
    coercer: (value, ctx) => MetadataStruct.coercer(schema.coercer(value, ctx), ctx),
    *entries(value, ctx): Iterable<Entry> {
      // The user's entries first: their coercion (e.g. `defaulted`) writes into `value`, and the
      // metadata rules, read lazily afterwards, then check the coerced values too.
      yield* schema.entries(value, ctx);
      yield* MetadataStruct.entries(value, ctx);
    },
    *validator(value, ctx) {
      yield* MetadataStruct.validator(value, ctx);
      yield* schema.validator(value, ctx);
    },
    *refiner(value, ctx) {
      yield* MetadataStruct.refiner(value, ctx);
      yield* schema.refiner(value, ctx);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// EventCreate (outgoing wire) and TrackInput (camelCase input of track())
// ---------------------------------------------------------------------------------------------

/** The outgoing `EventCreate` of `POST /v1/events/ingest` (exactly one customer reference). */
export interface EventCreateWire {
  name: string;
  customer_id?: string;
  external_customer_id?: string;
  timestamp?: string;
  metadata?: Metadata;
  organization_id?: string;
  external_id?: string;
  parent_id?: string;
}

/**
 * The outgoing `EventCreate` of `POST /v1/events/ingest`, as Polar validates it (exactly one customer reference).
 * @example
 * // A backend that receives events from browsers:
 * const [error, event] = validate(body.events[0], EventCreateStruct);
 */
export const EventCreateStruct: Struct<EventCreateWire, null> = strictObject<EventCreateWire>(
  'event-create',
  'an EventCreate object { name, customer_id | external_customer_id, timestamp?, metadata?, organization_id?, external_id?, parent_id? }',
  {
    name: NameStruct,
    customer_id: optionalStruct(UuidStruct),
    external_customer_id: optionalStruct(NonEmptyStringStruct),
    timestamp: optionalStruct(IsoTimestampStringStruct),
    metadata: optionalStruct(MetadataStruct),
    organization_id: optionalStruct(UuidStruct),
    external_id: optionalStruct(ExternalIdStruct),
    parent_id: optionalStruct(NonEmptyStringStruct),
  },
  (value, ctx) =>
    exactlyOne(
      value,
      ctx,
      { key: 'external_customer_id', what: 'a non-empty string' },
      { key: 'customer_id', what: 'a UUID' },
    ),
);

/** The input of `buffer.track()`. */
export interface TrackInput {
  name: string;
  externalCustomerId?: string;
  customerId?: string;
  metadata?: Metadata;
  timestamp?: Date;
  externalId?: string;
  parentId?: string;
  organizationId?: string;
}

const TRACK_INPUT_WHAT =
  'a plain object { name, externalCustomerId | customerId, metadata?, timestamp?: Date, externalId?, parentId?, organizationId? }';

function trackInputSchema(metadata: Struct<any, any>): Schema {
  return {
    name: NameStruct,
    externalCustomerId: optionalStruct(NonEmptyStringStruct),
    customerId: optionalStruct(UuidStruct),
    metadata: optionalStruct(metadata),
    timestamp: optionalStruct(DateStruct),
    externalId: optionalStruct(ExternalIdStruct),
    parentId: optionalStruct(NonEmptyStringStruct),
    organizationId: optionalStruct(UuidStruct),
  };
}

const trackInputCheck = (value: Record<string, unknown>, ctx: Context): Iterable<Partial<Failure>> =>
  exactlyOne(
    value,
    ctx,
    { key: 'externalCustomerId', what: 'a non-empty string' },
    { key: 'customerId', what: 'a UUID' },
    ' (pass one, or set defaults.externalCustomerId / defaults.customerId on the buffer)',
  );

/**
 * The camelCase input of `buffer.track()` (before `defaults` are applied, one customer reference).
 * @example
 * is({ name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 1 } }, TrackInputStruct); // true
 */
export const TrackInputStruct: Struct<TrackInput, null> = strictObject<TrackInput>(
  'track-input',
  TRACK_INPUT_WHAT,
  trackInputSchema(MetadataStruct),
  trackInputCheck,
);

/**
 * The `track()` input struct, where the metadata must ALSO pass `metadataSchema` (the buffer's
 * `schemas[eventName]`). Failures of that struct come out under the `metadata` path.
 */
export function createTrackInputStruct(metadataSchema?: Struct<any, any>): Struct<TrackInput, null> {
  if (metadataSchema === undefined) return TrackInputStruct;
  return strictObject<TrackInput>(
    'track-input',
    TRACK_INPUT_WHAT,
    trackInputSchema(metadataWithSchema(metadataSchema)),
    trackInputCheck,
  );
}

// ---------------------------------------------------------------------------------------------
// Incoming wire JSON → camelCase model
// ---------------------------------------------------------------------------------------------

/** `some_new_field` → `someNewField` (a leading underscore and `_2` stay as they are). */
export function snakeToCamel(key: string): string {
  if (!key.includes('_')) return key;
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charAt(i);
    const next = key.charAt(i + 1);
    if (c === '_' && i > 0 && key.charAt(i - 1) !== '_' && next >= 'a' && next <= 'z') {
      out += next.toUpperCase();
      i++;
    } else {
      out += c;
    }
  }
  return out;
}

/** `someNewField` → `some_new_field`. */
export function camelToSnake(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charAt(i);
    out += i > 0 && c >= 'A' && c <= 'Z' ? `_${c.toLowerCase()}` : c;
  }
  return out;
}

/** Copies an object with camelCase keys (shallow: the values are kept as they are). */
function camelizeKeys(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key === '__proto__') continue;
    setOwn(out, snakeToCamel(key), value[key]);
  }
  return out;
}

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
  email: string;
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

const NullableString = nullableStruct(StringStruct);
const NullableWireDate = nullableStruct(WireDateStruct);

/** Incoming metadata: a plain object whose values pass `value`, kept exactly as the server sent them. */
function incomingRecord(what: string, value: Struct<any, any>): Struct<Record<string, any>, null> {
  return recordOf('record', what, () => value);
}

const isScalar = (v: unknown): boolean =>
  typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

const CustomerMetadataStruct = incomingRecord(
  'a plain object of customer metadata',
  leaf<string | number | boolean>('customer-metadata-value', 'a string, a finite number or a boolean', isScalar),
);

/** Incoming event metadata: as the server returns it (`_cost.amount` as "150", `_llm.prompt` null...). */
const IncomingMetadataStruct = incomingRecord(
  'a plain object of event metadata',
  leaf<string | number | boolean | object>(
    'incoming-metadata-value',
    'a string, a finite number, a boolean or an object',
    (v) => isScalar(v) || isPlainObject(v),
  ),
);

const BillingAddressStruct: Struct<BillingAddress, null> = looseObject<BillingAddress>(
  'billing-address',
  'a billing address object { line1?, line2?, postal_code?, city?, state?, country }',
  {
    line1: optionalStruct(NullableString),
    line2: optionalStruct(NullableString),
    postalCode: optionalStruct(NullableString),
    city: optionalStruct(NullableString),
    state: optionalStruct(NullableString),
    country: StringStruct,
  },
  camelizeKeys,
);

/** Fills nullable fields the server left out with `null`, drops `null` from non-nullable optional ones. */
function fillNulls(model: Record<string, unknown>, nullables: readonly string[], dropWhenNull: readonly string[] = []) {
  for (const key of nullables) if (model[key] === undefined) model[key] = null;
  for (const key of dropWhenNull) if (model[key] === null) delete model[key];
  return model;
}

/**
 * A Polar Customer: `create(wireJson, CustomerStruct)` returns the camelCase `Customer` with Dates.
 * Unknown extra fields are kept (camelCase keys, values as they are).
 * @example
 * const customer = create({ id: '…', created_at: '2025-01-01T00:00:00Z', email: 'a@b.c', ... }, CustomerStruct);
 */
export const CustomerStruct: Struct<Customer, null> = looseObject<Customer>(
  'customer',
  'a Customer object',
  {
    id: StringStruct,
    createdAt: WireDateStruct,
    modifiedAt: NullableWireDate,
    metadata: CustomerMetadataStruct,
    externalId: NullableString,
    email: StringStruct,
    emailVerified: BooleanStruct,
    name: NullableString,
    billingAddress: nullableStruct(BillingAddressStruct),
    taxId: nullableStruct(
      new Struct<(string | null)[], null>({
        type: 'array',
        schema: null,
        coercer: (v) => (Array.isArray(v) ? v.slice() : v),
        *entries(v): Iterable<Entry> {
          if (Array.isArray(v)) for (const [i, item] of v.entries()) yield [i, item, NullableString];
        },
        validator: (v) => Array.isArray(v) || expected('an array of strings (or null)', v),
      }),
    ),
    organizationId: StringStruct,
    deletedAt: NullableWireDate,
    avatarUrl: NullableString,
  },
  (wire) =>
    fillNulls(camelizeKeys(wire), ['modifiedAt', 'externalId', 'name', 'billingAddress', 'taxId', 'deletedAt', 'avatarUrl']),
);

/**
 * A Polar UserEvent (`source: "user"`): `create(wireJson, UserEventStruct)` returns the camelCase
 * `UserEvent` with Dates. Tolerates microseconds, `+00:00`, absent/null newer fields; unknown extra
 * fields are kept (camelCase keys, values as they are). Metadata is kept exactly as the server sent it.
 * @example
 * const events = page.items.filter((item) => !isSystemEvent(item)).map((item) => create(item, UserEventStruct));
 */
export const UserEventStruct: Struct<UserEvent, null> = looseObject<UserEvent>(
  'user-event',
  'a UserEvent object',
  {
    id: StringStruct,
    timestamp: WireDateStruct,
    organizationId: StringStruct,
    customerId: NullableString,
    customer: nullableStruct(CustomerStruct),
    externalCustomerId: NullableString,
    name: StringStruct,
    source: literalStruct('user'),
    metadata: IncomingMetadataStruct,
    label: optionalStruct(StringStruct),
    parentId: optionalStruct(NullableString),
    childCount: optionalStruct(IntegerStruct),
    memberId: optionalStruct(NullableString),
    externalMemberId: optionalStruct(NullableString),
  },
  (wire) => {
    const model = fillNulls(camelizeKeys(wire), ['customerId', 'customer', 'externalCustomerId'], ['label', 'childCount']);
    model['metadata'] ??= {};
    return model;
  },
);

/**
 * A Polar SystemEvent (`source: "system"`), parsed loosely; everything else is kept.
 * @example
 * const system = create(item, SystemEventStruct);
 */
export const SystemEventStruct: Struct<SystemEvent, null> = looseObject<SystemEvent>(
  'system-event',
  'a SystemEvent object',
  {
    id: StringStruct,
    timestamp: WireDateStruct,
    name: StringStruct,
    source: literalStruct('system'),
    metadata: incomingRecord('a plain object of event metadata', define('unknown', () => true)),
  },
  (wire) => {
    const model = camelizeKeys(wire);
    model['metadata'] ??= {};
    return model;
  },
);

/**
 * True for list items the server marks `source: "system"` (they are not UserEvents).
 * @example
 * const userItems = page.items.filter((item) => !isSystemEvent(item));
 */
export function isSystemEvent(value: unknown): value is { source: 'system'; [key: string]: unknown } {
  try {
    return typeof value === 'object' && value !== null && (value as { source?: unknown }).source === 'system';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Model → wire JSON
// ---------------------------------------------------------------------------------------------

function toWireValue(value: unknown): unknown {
  return isValidDate(value) ? value.toISOString() : value;
}

function cloneJsonish(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cloneJsonish);
  if (isValidDate(value)) return value.toISOString();
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      setOwn(out, key, cloneJsonish(value[key]));
    }
    return out;
  }
  return value;
}

function modelToWire(model: object, special: Record<string, (value: unknown) => unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(model)) {
    const value = (model as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const convert = special[key];
    setOwn(out, camelToSnake(key), convert ? convert(value) : toWireValue(value));
  }
  return out;
}

/** `Customer` (camelCase, Dates) → Polar's snake_case wire JSON. */
export function toCustomerWire(customer: Customer): Record<string, unknown> {
  return modelToWire(customer, {
    metadata: cloneJsonish,
    billingAddress: (v) => (v === null ? null : modelToWire(v as object, {})),
    taxId: cloneJsonish,
  });
}

/** `UserEvent` (camelCase, Dates) → Polar's snake_case wire JSON (Dates as ISO strings). */
export function toUserEventWire(event: UserEvent): Record<string, unknown> {
  return modelToWire(event, {
    metadata: cloneJsonish,
    customer: (v) => (v === null ? null : toCustomerWire(v as Customer)),
  });
}
