/**
 * A customer's meter usage as Polar's server computes it in SQL, written for the mock from
 * polarsource/polar `server/polar/meter/filter.py` (`FilterClause.get_sql_clause`),
 * `meter/aggregation.py` (`get_sql_column`, `get_sql_clause`), `event/repository.py`
 * (`get_meter_clause`) and `customer_meter/service.py` (`_get_usage_quantity`). It works on the
 * events as Postgres holds them (JSONB metadata, `_cost.amount` a number), never through the
 * library's evaluator (src/meters/evaluate.ts): the two are kept apart so that each checks the other.
 *
 * @module
 */
import type { StoredEvent, WireCustomer } from './state.js';

/** A meter definition Polar accepted (`GET /v1/meters/`). */
export interface MeterDefinition {
  filter: unknown;
  aggregation: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A SQL value: `undefined` is SQL NULL. */
type Sql = Json | undefined;

const FILTERABLE = new Set(['timestamp', 'name', 'source']);
const OPERATORS = new Set(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'like', 'not_like']);

/** pydantic's `_strip_metadata_prefix`: one leading `metadata.` goes. */
function stripPrefix(property: string): string {
  return property.startsWith('metadata.') ? property.slice('metadata.'.length) : property;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks a definition against Polar's pydantic models (`Filter`, `FilterClause`, `Aggregation`);
 * throws a `TypeError` naming the path of the first problem.
 */
export function checkMeterDefinition(meter: MeterDefinition): void {
  const checkFilter = (f: unknown, path: string): void => {
    if (!isRecord(f)) throw new TypeError(`${path}: expected { conjunction, clauses }`);
    if (f['conjunction'] !== 'and' && f['conjunction'] !== 'or') throw new TypeError(`${path}.conjunction: expected "and" or "or"`);
    if (!Array.isArray(f['clauses'])) throw new TypeError(`${path}.clauses: expected a list`);
    f['clauses'].forEach((c: unknown, i: number) => {
      const at = `${path}.clauses.${i}`;
      if (isRecord(c) && 'conjunction' in c && 'clauses' in c && !('property' in c)) {
        checkFilter(c, at);
        return;
      }
      if (!isRecord(c)) throw new TypeError(`${at}: expected a clause or a filter`);
      if (typeof c['property'] !== 'string') throw new TypeError(`${at}.property: expected a string`);
      if (typeof c['operator'] !== 'string' || !OPERATORS.has(c['operator'])) throw new TypeError(`${at}.operator: not one of ${[...OPERATORS].join(', ')}`);
      const v = c['value'];
      const ok =
        typeof v === 'boolean' ||
        (typeof v === 'string' && [...v].length <= 1000) ||
        (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647);
      if (!ok) throw new TypeError(`${at}.value: expected a string of at most 1000 characters, an Int32 or a boolean`);
    });
  };
  checkFilter(meter.filter, 'filter');
  const a = meter.aggregation;
  if (!isRecord(a)) throw new TypeError('aggregation: expected { func, property? }');
  if (a['func'] === 'count') return;
  if (!['sum', 'max', 'min', 'avg', 'unique'].includes(a['func'] as string)) throw new TypeError('aggregation.func: not a Polar aggregation');
  if (typeof a['property'] !== 'string') throw new TypeError('aggregation.property: expected a string');
}

/** The event's metadata as Postgres' JSONB holds it: `_cost.amount` is stored as a float. */
export function jsonbMetadata(metadata: Record<string, unknown>): Record<string, Json> {
  const md = structuredClone(metadata) as Record<string, Json>;
  const cost = md['_cost'];
  if (isRecord(cost) && (typeof cost['amount'] === 'string' || typeof cost['amount'] === 'number')) {
    const n = Number(cost['amount']);
    if (Number.isFinite(n)) (cost as Record<string, Json>)['amount'] = n;
  }
  return md;
}

/** `user_metadata -> 'a' -> 'b'`: NULL when a step is missing or not an object. */
function nested(md: Record<string, Json>, property: string): Sql {
  let v: Sql = md;
  for (const part of property.split('.')) {
    if (!isRecord(v)) return undefined;
    v = (v as Record<string, Json>)[part];
    if (v === undefined) return undefined;
  }
  return v;
}

/** `jsonb_typeof`. */
function jsonbType(v: Sql): string | undefined {
  if (v === undefined) return undefined;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** A number as Postgres' numeric prints it (plain decimal, no exponent). */
function numericText(n: number, fromFloat: boolean): string {
  let s: string;
  if (Number.isInteger(n) && Math.abs(n) < 1e21) s = BigInt(n).toString();
  else {
    const [mantissa, exp = '0'] = n.toExponential().split('e');
    const neg = mantissa!.startsWith('-');
    const digits = mantissa!.replace('-', '').replace('.', '');
    const point = 1 + Number(exp);
    const body =
      point <= 0
        ? `0.${'0'.repeat(-point)}${digits}`
        : point >= digits.length
          ? digits + '0'.repeat(point - digits.length)
          : `${digits.slice(0, point)}.${digits.slice(point)}`;
    s = (neg ? '-' : '') + body;
  }
  // A Python float that Polar dumped into JSONB keeps its ".0" (`json.dumps(150.0)` is "150.0").
  if (fromFloat && !s.includes('.') && Math.abs(n) < 1e16) s += '.0';
  return s;
}

/** jsonb's text: object keys shortest first, then bytewise; `", "` and `": "` between items. */
function jsonbText(v: Json, floats: boolean): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return numericText(v, floats);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => jsonbText(x, false)).join(', ')}]`;
  const keys = Object.keys(v).sort((a, b) => byteLength(a) - byteLength(b) || compareText(a, b));
  return `{${keys.map((k) => `${JSON.stringify(k)}: ${jsonbText(v[k]!, floats && k === 'amount')}`).join(', ')}}`;
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Text comparison in code point (UTF-8 byte) order, as Postgres' "C" collation does. */
function compareText(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}

/** `->>` on a JSONB value: a string's bare text, NULL for JSON null, else the JSONB text. */
function asText(v: Sql, floats: boolean): string | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : jsonbText(v, floats);
}

type Op = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'like' | 'not_like';

function compareValues(op: Op, c: number): boolean {
  switch (op) {
    case 'eq':
      return c === 0;
    case 'ne':
      return c !== 0;
    case 'gt':
      return c > 0;
    case 'gte':
      return c >= 0;
    case 'lt':
      return c < 0;
    case 'lte':
      return c <= 0;
    default:
      return false;
  }
}

/** `cast(extract(epoch from timestamp) as bigint)`: Postgres rounds numeric half away from zero. */
function epochSeconds(micros: number): number {
  const seconds = micros / 1_000_000;
  return Math.sign(seconds) * Math.round(Math.abs(seconds));
}

/** `FilterClause._get_str_value`: Python's `str()`, a boolean as Postgres' `t`/`f`. */
function strValue(v: string | number | boolean): string {
  return typeof v === 'boolean' ? (v ? 't' : 'f') : String(v);
}

/** One clause's SQL truth for an event (NULL counts as false: no NOT is applied above a clause). */
function clauseTruth(clause: Record<string, unknown>, e: StoredEvent, md: Record<string, Json>): boolean {
  const property = stripPrefix(clause['property'] as string);
  const op = clause['operator'] as Op;
  const value = clause['value'] as string | number | boolean;
  const like = op === 'like' || op === 'not_like';
  const contains = (text: string | undefined): boolean => {
    if (text === undefined) return false;
    const found = text.includes(strValue(value));
    return op === 'like' ? found : !found;
  };
  if (FILTERABLE.has(property)) {
    // `isinstance(value, allowed_type)`: a Python bool is an int.
    const intColumn = property === 'timestamp';
    if (intColumn ? typeof value === 'string' : typeof value !== 'string') return false;
    if (intColumn) {
      const column = epochSeconds(e.timestampMicros);
      if (like) return contains(String(column));
      // bigint compared with a boolean is a Postgres error: the job fails, nothing is counted.
      if (typeof value === 'boolean') return false;
      return compareValues(op, column - (value as number));
    }
    const column = property === 'name' ? e.name : e.source;
    if (like) return contains(column);
    return compareValues(op, compareText(column, value as string));
  }
  const attr = nested(md, property);
  if (like) return contains(asText(attr, property === '_cost.amount'));
  switch (jsonbType(attr)) {
    case 'string':
      return compareValues(op, compareText(attr as string, strValue(value)));
    case 'number': {
      if (typeof value === 'string') return false;
      const n = typeof value === 'boolean' ? (value ? 1 : 0) : value;
      return compareValues(op, Math.sign((attr as number) - n));
    }
    case 'boolean':
      if (typeof value !== 'boolean') return false;
      return compareValues(op, Number(attr as boolean) - Number(value));
    default:
      return false;
  }
}

function filterTruth(filter: Record<string, unknown>, e: StoredEvent, md: Record<string, Json>): boolean {
  const clauses = filter['clauses'] as Record<string, unknown>[];
  if (clauses.length === 0) return true;
  const results = clauses.map((c) => ('clauses' in c && !('property' in c) ? filterTruth(c, e, md) : clauseTruth(c, e, md)));
  return filter['conjunction'] === 'and' ? results.every(Boolean) : results.some(Boolean);
}

interface Aggregation {
  func: 'count' | 'sum' | 'max' | 'min' | 'avg' | 'unique';
  property: string;
}

function aggregationOf(meter: MeterDefinition): Aggregation {
  const a = meter.aggregation as Record<string, unknown>;
  return { func: a['func'] as Aggregation['func'], property: a['func'] === 'count' ? '' : stripPrefix(a['property'] as string) };
}

/** `aggregation.get_sql_clause`: which rows the aggregation may read. */
function aggregationTruth(a: Aggregation, md: Record<string, Json>): boolean {
  if (a.func === 'count' || a.func === 'unique') return true;
  if (FILTERABLE.has(a.property)) return a.property === 'timestamp';
  return jsonbType(nested(md, a.property)) === 'number';
}

/** `get_meter_clause`: the meter's filter and its aggregation clause. */
export function meterClause(meter: MeterDefinition, e: StoredEvent): boolean {
  const md = jsonbMetadata(e.metadata);
  return filterTruth(meter.filter as Record<string, unknown>, e, md) && aggregationTruth(aggregationOf(meter), md);
}

/** A value `count(distinct ...)` tells apart: jsonb equality (numbers by value, objects by content). */
function distinctKey(v: Json): string {
  if (typeof v === 'number') return `n${v}`;
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(distinctKey).join(',')}]`;
  return `{${Object.keys(v)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${distinctKey(v[k]!)}`)
    .join(',')}}`;
}

function aggregateValues(func: Aggregation['func'], values: Sql[]): number {
  const present = values.filter((v): v is Json => v !== undefined && v !== null);
  if (func === 'count') return values.length;
  if (func === 'unique') return new Set(present.map(distinctKey)).size;
  const numbers = present.map(Number);
  if (numbers.length === 0) return 0;
  switch (func) {
    case 'sum':
      return numbers.reduce((s, n) => s + n, 0);
    case 'max':
      return Math.max(...numbers);
    case 'min':
      return Math.min(...numbers);
    default:
      return numbers.reduce((s, n) => s + n, 0) / numbers.length;
  }
}

/**
 * `_get_usage_quantity`: the customer's `user` events matching the meter, by `customer_id` and,
 * when the customer has an external id, by `external_customer_id` too (UNION ALL: an event
 * carrying both is counted twice). `count`/`sum` add the two branches' aggregates; the others
 * aggregate the raw values of both branches, read as `user_metadata[property]` (a top-level key:
 * a dotted property reads nothing there), as Polar's SQL does.
 */
export function usageQuantity(meter: MeterDefinition, customer: WireCustomer, events: readonly StoredEvent[]): number {
  const a = aggregationOf(meter);
  const pick = (byExternal: boolean): StoredEvent[] =>
    events.filter(
      (e) =>
        e.source === 'user' &&
        (byExternal ? customer.external_id !== null && e.externalCustomerId === customer.external_id : e.customerId === customer.id) &&
        meterClause(meter, e),
    );
  const column = (e: StoredEvent, topLevel: boolean): Sql => {
    if (a.func === 'count') return e.id;
    if (a.property === 'timestamp' && a.func !== 'unique') return epochSeconds(e.timestampMicros);
    const md = jsonbMetadata(e.metadata);
    const v = topLevel ? md[a.property] : nested(md, a.property);
    if (a.func === 'unique') return v;
    return typeof v === 'number' ? v : undefined;
  };
  const byId = pick(false);
  if (customer.external_id === null)
    return aggregateValues(
      a.func,
      byId.map((e) => column(e, false)),
    );
  const byExternal = pick(true);
  if (a.func === 'count' || a.func === 'sum') {
    return (
      aggregateValues(
        a.func,
        byId.map((e) => column(e, false)),
      ) +
      aggregateValues(
        a.func,
        byExternal.map((e) => column(e, false)),
      )
    );
  }
  return aggregateValues(
    a.func,
    [...byId, ...byExternal].map((e) => column(e, true)),
  );
}
