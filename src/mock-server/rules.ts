/**
 * Polar's server-side validation rules for `POST /v1/events/ingest`, re-implemented independently
 * of the client's validation so that the two can check each other.
 *
 * The shapes of the error items follow FastAPI / pydantic v2: `{ type, loc, msg, input, ctx? }`.
 * An `EventCreate` is the union `EventCreateCustomer | EventCreateExternalCustomer`; as in pydantic's
 * "smart" union mode an event is valid when either member accepts it (the customer member wins
 * when both do, which is how Polar silently keeps `customer_id` when both references come), and
 * when neither does, the errors of both members are reported, each under
 * `["body", "events", <index>, <member name>, <field>, ...]`.
 *
 * @module
 */

/** One entry of a 422 answer's `detail` array (FastAPI / pydantic v2 shape). */
export interface ValidationErrorItem {
  /** Machine-readable error type, e.g. `"missing"`, `"string_type"`, `"value_error"`. */
  type: string;
  /** Where the bad value is, e.g. `["body", "events", 3, "EventCreateExternalCustomer", "metadata", "note"]`. */
  loc: (string | number)[];
  /** Human-readable message. */
  msg: string;
  /** The offending input (for `missing`, the object the field is missing from). */
  input: unknown;
  /** Extra context, e.g. `{ max_length: 500 }`. */
  ctx?: Record<string, unknown>;
}

/** An event that passed the schema, normalised; what the store works with. */
export interface ValidEvent {
  /** Position of the event in the batch. */
  index: number;
  name: string;
  /** Microseconds since the epoch, or `null` for "server now". */
  timestampMicros: number | null;
  customerId: string | null;
  externalCustomerId: string | null;
  externalId: string | null;
  parentId: string | null;
  /** `member_id` (only with `customer_id`; lower case). */
  memberId: string | null;
  /** `external_member_id` (only with `external_customer_id`). */
  externalMemberId: string | null;
  /** Normalised metadata (`_cost.amount` as the string Polar returns). */
  metadata: Record<string, unknown>;
  /** `organization_id` as sent (lower case), or `null`: the service checks it against the token. */
  organizationId: string | null;
}

/** Result of validating one event against the union. */
export type EventCheck = { index: number; ok: true; event: ValidEvent } | { index: number; ok: false; errors: ValidationErrorItem[] };

/** Result of validating a whole ingest body. */
export type BodyCheck = { ok: true; events: EventCheck[] } | { ok: false; errors: ValidationErrorItem[] };

/** The two members of Polar's `EventCreate` union, in pydantic's order. */
export const UNION_MEMBERS = ['EventCreateCustomer', 'EventCreateExternalCustomer'] as const;

/** Longest event name Polar's database column holds; longer names make the server answer 500. */
export const MAX_NAME_LENGTH = 128;
/** Longest metadata string value, in characters (code points). */
export const MAX_METADATA_STRING = 500;

const UUID_RE = /^(?:urn:uuid:)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Whether `value` is a UUID string (any version, as Python's `uuid.UUID` parses it). */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

const UUID4_RE = /^(?:urn:uuid:)?[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Whether `value` is a version-4 UUID, as pydantic's `UUID4` (member_id) requires. */
export function isUuid4(value: unknown): value is string {
  return typeof value === 'string' && UUID4_RE.test(value);
}

/** Python-style length of a string: code points, not UTF-16 units. */
export function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2})(?::?(\d{2}))?)?)?$/;

/** Outcome of parsing a datetime the way pydantic does. */
export type ParsedDatetime = { ok: true; micros: number; aware: boolean } | { ok: false; type: string; msg: string };

/**
 * Parses an ISO 8601 datetime (or a unix timestamp number, seconds or milliseconds) into
 * microseconds since the epoch, keeping sub-millisecond precision. A string without an offset is
 * read as UTC and reported as not `aware`.
 */
export function parseDatetime(value: unknown): ParsedDatetime {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { ok: false, type: 'datetime_parsing', msg: 'Input should be a finite number' };
    // pydantic: values above 2e10 are milliseconds, else seconds.
    const ms = Math.abs(value) > 2e10 ? value : value * 1000;
    return { ok: true, micros: Math.round(ms * 1000), aware: true };
  }
  if (typeof value !== 'string') {
    return { ok: false, type: 'datetime_type', msg: 'Input should be a valid datetime' };
  }
  const m = ISO_RE.exec(value.trim());
  if (!m) {
    return {
      ok: false,
      type: 'datetime_from_date_parsing',
      msg: 'Input should be a valid datetime or date, invalid character in year',
    };
  }
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', z, sign, oh, om, os] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  // Date.UTC reads years 0-99 as 1900-1999: set the full year explicitly (Python has years 1-9999).
  const check = new Date(Date.UTC(2000, 0, 1));
  check.setUTCFullYear(year, month - 1, day);
  check.setUTCHours(hour, minute, second, 0);
  const base = check.getTime();
  if (
    year < 1 ||
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return { ok: false, type: 'datetime_from_date_parsing', msg: 'Input should be a valid datetime, day value is outside expected range' };
  }
  // More than 6 fraction digits are truncated to microseconds.
  const micros = Number(`${frac}000000`.slice(0, 6));
  let offsetSeconds = 0;
  let aware = false;
  if (z !== undefined) {
    aware = true;
  } else if (sign !== undefined) {
    aware = true;
    const oH = Number(oh);
    const oM = Number(om);
    const oS = os === undefined ? 0 : Number(os);
    if (oH > 23 || oM > 59 || oS > 59) {
      return { ok: false, type: 'datetime_parsing', msg: 'Input should be a valid datetime, timezone offset out of range' };
    }
    offsetSeconds = (sign === '-' ? -1 : 1) * (oH * 3600 + oM * 60 + oS);
  }
  return { ok: true, micros: (base / 1000 - offsetSeconds) * 1_000_000 + micros, aware };
}

type RelError = Omit<ValidationErrorItem, 'loc'> & { rel: (string | number)[] };

/** pydantic's `UUID4` (customer_id, member_id, organization_id): a UUID, and of version 4. */
function uuid4Error(field: string, value: unknown): RelError | null {
  if (typeof value !== 'string') return err([field], 'uuid_type', 'UUID input should be a string, bytes or UUID object', value);
  if (!isUuid(value)) return err([field], 'uuid_parsing', 'Input should be a valid UUID', value);
  if (!isUuid4(value)) return err([field], 'uuid_version', 'UUID version 4 expected', value, { expected_version: 4 });
  return null;
}

function missing(field: string, container: unknown): RelError {
  return { rel: [field], type: 'missing', msg: 'Field required', input: container };
}

function err(rel: (string | number)[], type: string, msg: string, input: unknown, ctx?: Record<string, unknown>): RelError {
  return ctx === undefined ? { rel, type, msg, input } : { rel, type, msg, input, ctx };
}

function checkOptionalString(raw: Record<string, unknown>, field: string, out: RelError[]): string | null {
  const v = raw[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') {
    out.push(err([field], 'string_type', 'Input should be a valid string', v));
    return null;
  }
  if (v.includes('\u0000')) {
    out.push(nulError(field, v));
    return null;
  }
  return v;
}

/** Polar's `_cost.amount`: `Decimal` with `max_digits=17, decimal_places=12` (server/polar/event/schemas.py). */
export const COST_MAX_DIGITS = 17;
export const COST_DECIMAL_PLACES = 12;

const DECIMAL_RE = /^\s*([+-]?)(?:(\d(?:_?\d)*)(?:\.((?:\d(?:_?\d)*)?))?|\.(\d(?:_?\d)*))(?:[eE]([+-]?\d(?:_?\d)*))?\s*$/;
const SPECIAL_RE = /^\s*[+-]?(?:inf(?:inity)?|s?nan\d*)\s*$/i;

/** A decimal as Python's `Decimal` holds it: the digit string (no leading zeros kept) and the exponent. */
interface PyDecimal {
  negative: boolean;
  digits: string;
  exponent: number;
}

/** The shortest round-trip digits of a finite float, as Python's `repr(float)` picks them. */
function floatDigits(value: number): PyDecimal {
  const [mantissa, exp = '0'] = Math.abs(value).toExponential().split('e');
  const digits = mantissa!.replace('.', '');
  return { negative: value < 0 || Object.is(value, -0), digits, exponent: Number(exp) - (digits.length - 1) };
}

/** Parses what `Decimal(x)` accepts, as pydantic hands it over (floats go through `str()` first). */
function toPyDecimal(value: unknown): PyDecimal | 'special' | null {
  if (typeof value === 'number') return Number.isFinite(value) ? floatDigits(value) : 'special';
  if (typeof value !== 'string') return null;
  if (SPECIAL_RE.test(value)) return 'special';
  const m = DECIMAL_RE.exec(value);
  if (!m) return null;
  const [, sign, int = '', frac = '', onlyFrac, exp = '0'] = m;
  const whole = int.replace(/_/g, '');
  const fraction = (onlyFrac ?? frac).replace(/_/g, '');
  return { negative: sign === '-', digits: whole + fraction, exponent: Number(exp.replace(/_/g, '')) - fraction.length };
}

/** (decimals, digits) the way pydantic-core's `extract_decimal_digits_info` counts them. */
function digitsInfo(d: PyDecimal, normalized: boolean): { decimals: number; digits: number } {
  let digits = d.digits.replace(/^0+(?=\d)/, '');
  let exponent = d.exponent;
  if (normalized) {
    if (/^0+$/.test(digits)) return { decimals: 0, digits: 1 };
    while (digits.length > 1 && digits.endsWith('0')) {
      digits = digits.slice(0, -1);
      exponent++;
    }
  }
  if (exponent >= 0) return { decimals: 0, digits: digits.length + exponent };
  return { decimals: -exponent, digits: Math.max(digits.length, -exponent) };
}

/** Python's `str(Decimal)`. */
function pyDecimalString(d: PyDecimal): string {
  const digits = d.digits.replace(/^0+(?=\d)/, '');
  const adjusted = d.exponent + digits.length - 1;
  let body: string;
  if (d.exponent <= 0 && adjusted >= -6) {
    if (d.exponent === 0) body = digits;
    else {
      const point = digits.length + d.exponent;
      body = point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}` : `0.${'0'.repeat(-point)}${digits}`;
    }
  } else {
    const rest = digits.slice(1);
    body = `${digits[0]}${rest ? `.${rest}` : ''}E${adjusted >= 0 ? '+' : ''}${adjusted}`;
  }
  return d.negative ? `-${body}` : body;
}

/** Python's `repr(float)` read back as a `Decimal`: `150` -> `150.0`, `1e-5` -> `0.00001`. */
function pyFloatDecimal(value: number): PyDecimal {
  const d = floatDigits(value);
  const adjusted = d.exponent + d.digits.length - 1;
  // repr() writes a fixed-point float with at least one decimal ("150.0") between 1e-4 and 1e16.
  if (adjusted >= -4 && adjusted < 16 && d.exponent >= 0) return { ...d, digits: `${d.digits + '0'.repeat(d.exponent)}0`, exponent: -1 };
  return d;
}

/**
 * `_cost.amount` as the newest server returns it: the `Decimal` is stored as a float in JSONB
 * (`kit/db/postgres.py` serialises Decimal with `float()`), read back as a float and turned into a
 * `Decimal` through `str()`, then written as a string: `150` -> `"150.0"`, `0.5` -> `"0.5"`.
 */
export function costAmountString(v: unknown): string {
  const d = toPyDecimal(v);
  if (d === null || d === 'special') return String(v);
  return pyDecimalString(pyFloatDecimal(Number(`${d.negative ? '-' : ''}${d.digits || '0'}e${d.exponent}`)));
}

/** Checks `_cost.amount` against pydantic's Decimal rules; returns its error or null. */
function checkAmount(value: unknown, rel: (string | number)[]): RelError | null {
  const d = toPyDecimal(value);
  if (d === null) {
    return typeof value === 'string'
      ? err(rel, 'decimal_parsing', 'Input should be a valid decimal', value)
      : err(rel, 'decimal_type', 'Decimal input should be an integer, float, string or Decimal object', value);
  }
  if (d === 'special') return err(rel, 'finite_number', 'Input should be a finite number', value);
  const raw = digitsInfo(d, false);
  const norm = digitsInfo(d, true);
  if (raw.digits > COST_MAX_DIGITS && norm.digits > COST_MAX_DIGITS) {
    return err(rel, 'decimal_max_digits', `Decimal input should have no more than ${COST_MAX_DIGITS} digits in total`, value, {
      max_digits: COST_MAX_DIGITS,
    });
  }
  if (raw.decimals > COST_DECIMAL_PLACES && norm.decimals > COST_DECIMAL_PLACES) {
    return err(rel, 'decimal_max_places', `Decimal input should have no more than ${COST_DECIMAL_PLACES} decimal places`, value, {
      decimal_places: COST_DECIMAL_PLACES,
    });
  }
  const maxWhole = COST_MAX_DIGITS - COST_DECIMAL_PLACES;
  if (raw.digits - raw.decimals > maxWhole && norm.digits - norm.decimals > maxWhole) {
    return err(rel, 'decimal_whole_digits', `Decimal input should have no more than ${maxWhole} digits before the decimal point`, value, {
      whole_digits: maxWhole,
    });
  }
  return null;
}

function checkInt(value: unknown, rel: (string | number)[], out: RelError[]): boolean {
  if (typeof value === 'number' && Number.isInteger(value)) return true;
  if (typeof value === 'number') {
    out.push(err(rel, 'int_from_float', 'Input should be a valid integer, got a number with a fractional part', value));
  } else {
    out.push(err(rel, 'int_type', 'Input should be a valid integer', value));
  }
  return false;
}

function checkCost(value: unknown, out: RelError[]): Record<string, unknown> | null {
  const rel = ['metadata', '_cost'];
  if (!isPlainObject(value)) {
    out.push(err(rel, 'dict_type', 'Input should be a valid dictionary', value));
    return null;
  }
  const before = out.length;
  if (!('amount' in value)) out.push(err([...rel, 'amount'], 'missing', 'Field required', value));
  else {
    const e = checkAmount(value['amount'], [...rel, 'amount']);
    if (e) out.push(e);
  }
  const currency = value['currency'];
  if (!('currency' in value)) out.push(err([...rel, 'currency'], 'missing', 'Field required', value));
  else if (typeof currency !== 'string') out.push(err([...rel, 'currency'], 'string_type', 'Input should be a valid string', currency));
  // Field(pattern="usd") is a regex search, not an equality: "usd" anywhere in the string passes.
  else if (!currency.includes('usd')) {
    out.push(err([...rel, 'currency'], 'string_pattern_mismatch', "String should match pattern 'usd'", currency, { pattern: 'usd' }));
  }
  if (out.length !== before) return null;
  // A TypedDict drops keys it does not declare.
  return { amount: costAmountString(value['amount']), currency };
}

const LLM_KEYS = ['vendor', 'model', 'prompt', 'response', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'total_tokens'];

function checkLlm(value: unknown, out: RelError[]): Record<string, unknown> | null {
  const rel = ['metadata', '_llm'];
  if (!isPlainObject(value)) {
    out.push(err(rel, 'dict_type', 'Input should be a valid dictionary', value));
    return null;
  }
  const before = out.length;
  for (const f of ['vendor', 'model']) {
    if (!(f in value)) out.push(err([...rel, f], 'missing', 'Field required', value));
    else if (typeof value[f] !== 'string') out.push(err([...rel, f], 'string_type', 'Input should be a valid string', value[f]));
  }
  for (const f of ['prompt', 'response']) {
    const v = value[f];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      out.push(err([...rel, f], 'string_type', 'Input should be a valid string', v));
    }
  }
  for (const f of ['input_tokens', 'output_tokens', 'total_tokens']) {
    if (!(f in value)) out.push(err([...rel, f], 'missing', 'Field required', value));
    else checkInt(value[f], [...rel, f], out);
  }
  if (value['cached_input_tokens'] !== undefined) checkInt(value['cached_input_tokens'], [...rel, 'cached_input_tokens'], out);
  if (out.length !== before) return null;
  // `cost` left LLMMetadata when `_cost` arrived (Oct 2025): like any undeclared key it is dropped.
  const kept: Record<string, unknown> = {};
  for (const k of LLM_KEYS) if (value[k] !== undefined) kept[k] = value[k];
  return kept;
}

const INT_RE = /^\s*[+-]?\d+(?:_\d+)*\s*$/;
const FLOAT_RE = /^\s*[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d+(?:_\d+)*(?:[eE][+-]?\d+)?|\d+\.|inf(?:inity)?|nan)\s*$/i;
const BOOL_WORDS = new Set(['0', 'off', 'f', 'false', 'n', 'no', '1', 'on', 't', 'true', 'y', 'yes']);

/**
 * A metadata value against Polar's `MetadataValue` union (`str` of 1-500 characters | `int` |
 * `float` | `bool`, kit/metadata.py), the way pydantic's smart union reports it: valid when any
 * member takes it (lax mode: `"12"` of 501 digits is an int), else one error per member, each under
 * the member's tag.
 */
export function metadataValueErrors(value: unknown): RelError[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [err([], 'finite_number', 'Input should be a finite number', value)];
  if (typeof value === 'boolean') return [];
  if (typeof value === 'string') {
    const len = charLength(value);
    if (len >= 1 && len <= MAX_METADATA_STRING) return [];
    const lower = value.trim().toLowerCase();
    if (INT_RE.test(value) || FLOAT_RE.test(value) || BOOL_WORDS.has(lower)) return [];
    return [
      len < 1
        ? err(['constrained-str'], 'string_too_short', 'String should have at least 1 character', value, { min_length: 1 })
        : err(['constrained-str'], 'string_too_long', `String should have at most ${MAX_METADATA_STRING} characters`, value, {
            max_length: MAX_METADATA_STRING,
          }),
      err(['int'], 'int_parsing', 'Input should be a valid integer, unable to parse string as an integer', value),
      err(['float'], 'float_parsing', 'Input should be a valid number, unable to parse string as a number', value),
      err(['bool'], 'bool_parsing', 'Input should be a valid boolean, unable to interpret input', value),
    ];
  }
  return [
    err(['constrained-str'], 'string_type', 'Input should be a valid string', value),
    err(['int'], 'int_type', 'Input should be a valid integer', value),
    err(['float'], 'float_type', 'Input should be a valid number', value),
    err(['bool'], 'bool_type', 'Input should be a valid boolean', value),
  ];
}

/** Whether a value holds a NUL anywhere: in a string, a key, or nested (kit/schemas.py's `Schema`). */
export function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(containsNul);
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v));
  }
  return false;
}

/** Polar's `Schema` refuses a field holding NUL anywhere, after the field's own validation. */
function nulError(field: string, input: unknown): RelError {
  return err([field], 'value_error', 'Value error, This value contains invalid characters', input, { error: {} });
}

function checkMetadata(raw: Record<string, unknown>, out: RelError[]): Record<string, unknown> {
  if (!('metadata' in raw)) return {};
  const md = raw['metadata'];
  if (!isPlainObject(md)) {
    out.push(err(['metadata'], 'dict_type', 'Input should be a valid dictionary', md));
    return {};
  }
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(md)) {
    if (key === '_cost') {
      const c = checkCost(value, out);
      if (c) result[key] = c;
      continue;
    }
    if (key === '_llm') {
      const l = checkLlm(value, out);
      if (l) result[key] = l;
      continue;
    }
    const rel = ['metadata', key];
    const failures = metadataValueErrors(value);
    if (failures.length === 0) result[key] = value;
    else for (const f of failures) out.push({ ...f, rel: [...rel, ...f.rel] });
  }
  return result;
}

/**
 * Validates one event against both union members. `nowMicros` is the server clock, for the
 * "timestamp must be in the past" rule.
 */
export function validateEvent(raw: unknown, index: number, nowMicros: number): EventCheck {
  const prefix = (member: string): (string | number)[] => ['body', 'events', index, member];
  if (!isPlainObject(raw)) {
    return {
      index,
      ok: false,
      errors: UNION_MEMBERS.map((member) => ({
        type: 'model_attributes_type',
        loc: prefix(member),
        msg: 'Input should be a valid dictionary or object to extract fields from',
        input: raw,
      })),
    };
  }

  // Fields common to both members: their errors appear under each member.
  const common: RelError[] = [];
  let name = '';
  // `name: str = Field(max_length=128)`: no lower bound (an empty name is stored).
  if (!('name' in raw)) common.push(missing('name', raw));
  else if (typeof raw['name'] !== 'string') common.push(err(['name'], 'string_type', 'Input should be a valid string', raw['name']));
  else if (charLength(raw['name']) > MAX_NAME_LENGTH) {
    common.push(err(['name'], 'string_too_long', `String should have at most ${MAX_NAME_LENGTH} characters`, raw['name'], { max_length: MAX_NAME_LENGTH }));
  } else if (raw['name'].includes('\u0000')) common.push(nulError('name', raw['name']));
  else name = raw['name'];

  let timestampMicros: number | null = null;
  if ('timestamp' in raw) {
    const parsed = parseDatetime(raw['timestamp']);
    if (!parsed.ok) common.push(err(['timestamp'], parsed.type, parsed.msg, raw['timestamp']));
    else if (!parsed.aware) common.push(err(['timestamp'], 'timezone_aware', 'Input should have timezone info', raw['timestamp']));
    else if (parsed.micros > nowMicros) {
      common.push(err(['timestamp'], 'value_error', 'Value error, Timestamp must be in the past.', raw['timestamp'], { error: {} }));
    } else timestampMicros = parsed.micros;
  }

  const orgId = raw['organization_id'];
  const orgError = orgId === undefined || orgId === null ? null : uuid4Error('organization_id', orgId);
  if (orgError) common.push(orgError);
  const externalId = checkOptionalString(raw, 'external_id', common);
  const parentId = checkOptionalString(raw, 'parent_id', common);
  const before = common.length;
  const metadata = checkMetadata(raw, common);
  if (common.length === before && containsNul(raw['metadata'])) common.push(nulError('metadata', raw['metadata']));

  // Member-specific references.
  const customerErrors: RelError[] = [];
  const cid = raw['customer_id'];
  if (cid === undefined) customerErrors.push(missing('customer_id', raw));
  else {
    const e = uuid4Error('customer_id', cid);
    if (e) customerErrors.push(e);
  }
  // Each union member declares only its own member field and ignores the other one (pydantic's
  // default `extra="ignore"`): member_id goes with customer_id, external_member_id with external_customer_id.
  const mid = raw['member_id'];
  if (mid !== undefined && mid !== null) {
    const e = uuid4Error('member_id', mid);
    if (e) customerErrors.push(e);
  }
  const externalErrors: RelError[] = [];
  const ecid = raw['external_customer_id'];
  if (ecid === undefined) externalErrors.push(missing('external_customer_id', raw));
  else if (typeof ecid !== 'string') externalErrors.push(err(['external_customer_id'], 'string_type', 'Input should be a valid string', ecid));
  else if (ecid.includes('\u0000')) externalErrors.push(nulError('external_customer_id', ecid));
  const emid = raw['external_member_id'];
  if (emid !== undefined && emid !== null && typeof emid !== 'string') {
    externalErrors.push(err(['external_member_id'], 'string_type', 'Input should be a valid string', emid));
  } else if (typeof emid === 'string' && emid.includes('\u0000')) externalErrors.push(nulError('external_member_id', emid));

  if (common.length === 0 && (customerErrors.length === 0 || externalErrors.length === 0)) {
    const useCustomer = customerErrors.length === 0;
    return {
      index,
      ok: true,
      event: {
        index,
        name,
        timestampMicros,
        customerId: useCustomer ? (cid as string).toLowerCase() : null,
        externalCustomerId: useCustomer ? null : (ecid as string),
        externalId,
        parentId,
        memberId: useCustomer && typeof mid === 'string' ? mid.toLowerCase() : null,
        externalMemberId: !useCustomer && typeof emid === 'string' ? emid : null,
        metadata,
        organizationId: typeof orgId === 'string' ? orgId.toLowerCase() : null,
      },
    };
  }

  const errors: ValidationErrorItem[] = [];
  const memberErrors: Record<(typeof UNION_MEMBERS)[number], RelError[]> = {
    EventCreateCustomer: [...customerErrors, ...common],
    EventCreateExternalCustomer: [...externalErrors, ...common],
  };
  for (const member of UNION_MEMBERS) {
    for (const e of memberErrors[member]) {
      const { rel, ...rest } = e;
      errors.push({ ...rest, loc: [...prefix(member), ...rel] });
    }
  }
  return { index, ok: false, errors };
}

/** Validates the body of an ingest request (already parsed JSON). */
export function validateIngestBody(body: unknown, nowMicros: number): BodyCheck {
  if (!isPlainObject(body)) {
    return {
      ok: false,
      errors: [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }],
    };
  }
  if (!('events' in body)) {
    return { ok: false, errors: [{ type: 'missing', loc: ['body', 'events'], msg: 'Field required', input: body }] };
  }
  const events = body['events'];
  if (!Array.isArray(events)) {
    return { ok: false, errors: [{ type: 'list_type', loc: ['body', 'events'], msg: 'Input should be a valid list', input: events }] };
  }
  return { ok: true, events: events.map((raw, i) => validateEvent(raw, i, nowMicros)) };
}

/** Formats microseconds since the epoch the way Python's `datetime.isoformat()` does for UTC, always with 6 fraction digits. */
export function formatPythonTimestamp(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const frac = String(((micros % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 19)}.${frac}+00:00`;
}

/**
 * Formats microseconds since the epoch the way the newest server writes datetimes (pydantic v2's
 * JSON mode on a UTC datetime read from Postgres): `Z`, and the fraction only when it is not zero,
 * always 6 digits: `2025-06-02T14:03:07Z`, `2025-06-02T14:03:07.123000Z`.
 */
export function formatPydanticTimestamp(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const fraction = ((micros % 1_000_000) + 1_000_000) % 1_000_000;
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}${fraction === 0 ? '' : `.${String(fraction).padStart(6, '0')}`}Z`;
}
