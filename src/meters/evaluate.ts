import { MeterDefinitionError } from '../errors.js';

/*
 * Polar's meter semantics, evaluated on the device. The reference is the server's SQL, which computes
 * the billed quantity (polarsource/polar server/polar/meter/filter.py `get_sql_clause`,
 * aggregation.py, and customer_meter/service.py `_get_usage_quantity`); where the ingest-time
 * Python check (`matches`) differs, the SQL wins. README "Meters" lists each rule.
 */

/**
 * An event as a meter sees it: a mirrored UserEvent or a local event (`LocalEvent` fits).
 * @example
 * const event: MeterEvent = { name: 'api_call', timestamp: new Date(), metadata: { tokens: 12 } };
 */
export interface MeterEvent {
  name: string;
  timestamp: Date;
  /** @default "user" */
  source?: string;
  metadata: Readonly<Record<string, unknown>>;
}

/**
 * Polar's aggregation functions (`aggregation.func`).
 * @example
 * const func: AggregationFunction = compileMeter(meter).func; // 'sum'
 */
export type AggregationFunction = 'count' | 'sum' | 'max' | 'min' | 'avg' | 'unique';

/**
 * A running aggregate of one set of events; see `CompiledMeter.tally()`.
 * @example
 * const server = meter.tally();
 * for (const event of mirrored) server.add(event);
 */
export interface Tally {
  /** Adds the event when the meter counts it; returns whether it did. */
  add(event: MeterEvent): boolean;
  /** Events added (the ones the meter counts). */
  readonly count: number;
  /** The aggregation over this tally's events (0 for none, as Polar's `coalesce(..., 0)`). */
  value(): number;
  /** The aggregation over this tally's events and another's together. */
  with(other: Tally): number;
}

/**
 * A meter definition checked and compiled once.
 * @example
 * const meter = compileMeter(await (await fetch('/api/meters/credits')).json());
 * meter.aggregate(events); // what Polar computes over these events
 */
export interface CompiledMeter {
  readonly func: AggregationFunction;
  /** Whether Polar counts the event in this meter: its filter, and for sum/max/min/avg a number at the property. */
  matches(event: MeterEvent): boolean;
  /** The aggregation over the events the meter counts. */
  aggregate(events: Iterable<MeterEvent>): number;
  /** An empty running aggregate. */
  tally(): Tally;
}

type Predicate = (event: MeterEvent) => boolean;
type Operator = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'like' | 'not_like';
type ClauseValue = string | number | boolean;

const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'like', 'not_like'];
const FUNCTIONS = ['count', 'sum', 'max', 'min', 'avg', 'unique'];
/** The event columns a clause can name (the server's `Event._filterable_fields`); anything else is a metadata path. */
const COLUMNS = new Set(['name', 'source', 'timestamp']);
const COST_AMOUNT = '_cost.amount';

/**
 * Checks a meter as `GET /v1/meters/` returns it (or just its `{ filter, aggregation }`) and
 * compiles it.
 * @throws MeterDefinitionError naming the path of what Polar would refuse or could not evaluate.
 * @example
 * const meter = compileMeter({
 *   filter: { conjunction: 'and', clauses: [{ property: 'name', operator: 'eq', value: 'api_call' }] },
 *   aggregation: { func: 'sum', property: 'tokens' },
 * });
 */
export function compileMeter(meter: unknown): CompiledMeter {
  if (!isObject(meter)) throw new MeterDefinitionError('', 'expected an object { filter, aggregation }');
  const filter = compileFilter(meter['filter'], 'filter');
  const aggregation = meter['aggregation'];
  if (!isObject(aggregation)) throw new MeterDefinitionError('aggregation', 'expected an object { func, property? }');
  const func = aggregation['func'];
  if (typeof func !== 'string' || !FUNCTIONS.includes(func)) {
    throw new MeterDefinitionError('aggregation.func', `expected one of ${FUNCTIONS.join(', ')}, got ${show(func)}`);
  }
  const read = func === 'count' ? () => 1 : reader(func as AggregationFunction, propertyOf(aggregation['property'], 'aggregation.property'));
  const matches = (event: MeterEvent) => filter(event) && read(event) !== SKIP;
  const tally = () => new RunningTally(func as AggregationFunction, filter, read);
  return {
    func: func as AggregationFunction,
    matches,
    tally,
    aggregate(events) {
      const t = tally();
      for (const event of events) t.add(event);
      return t.value();
    },
  };
}

function compileFilter(filter: unknown, path: string): Predicate {
  if (!isObject(filter)) throw new MeterDefinitionError(path, 'expected an object { conjunction, clauses }');
  const conjunction = filter['conjunction'];
  if (conjunction !== 'and' && conjunction !== 'or') {
    throw new MeterDefinitionError(`${path}.conjunction`, `expected "and" or "or", got ${show(conjunction)}`);
  }
  const clauses = filter['clauses'];
  if (!Array.isArray(clauses)) throw new MeterDefinitionError(`${path}.clauses`, 'expected an array');
  const parts = clauses.map((clause: unknown, i) => {
    const at = `${path}.clauses.${i}`;
    return isObject(clause) && 'clauses' in clause ? compileFilter(clause, at) : compileClause(clause, at);
  });
  // An empty filter matches every event, with either conjunction (the server's `true()`).
  return conjunction === 'and' ? (e) => parts.every((p) => p(e)) : (e) => parts.length === 0 || parts.some((p) => p(e));
}

function compileClause(clause: unknown, path: string): Predicate {
  if (!isObject(clause)) throw new MeterDefinitionError(path, 'expected a clause { property, operator, value } or a filter { conjunction, clauses }');
  const property = propertyOf(clause['property'], `${path}.property`);
  const op = clause['operator'];
  if (typeof op !== 'string' || !OPERATORS.includes(op)) {
    throw new MeterDefinitionError(`${path}.operator`, `expected one of ${OPERATORS.join(', ')}, got ${show(op)}`);
  }
  const value = clauseValue(clause['value'], `${path}.value`);
  const operator = op as Operator;
  const like = operator === 'like' || operator === 'not_like';
  // What the server's LIKE looks for: the value as text (`str()`; a boolean is Postgres' "t"/"f").
  const needle = typeof value === 'boolean' ? (value ? 't' : 'f') : String(value);
  const contains = (text: string) => text.includes(needle) === (operator === 'like');

  if (property === 'name' || property === 'source') {
    if (typeof value !== 'string') return () => false;
    const column = property === 'name' ? (e: MeterEvent) => e.name : (e: MeterEvent) => e.source ?? 'user';
    return like ? (e) => contains(column(e)) : (e) => compare(operator, column(e), value);
  }
  if (property === 'timestamp') {
    // Whole epoch seconds, rounded as Postgres casts `extract(epoch ...)` to bigint.
    if (typeof value === 'string') return () => false;
    if (like) return (e) => contains(String(seconds(e)));
    if (typeof value === 'boolean')
      throw new MeterDefinitionError(`${path}.value`, `Polar cannot compare timestamp (a bigint) with a boolean using ${operator}`);
    return (e) => compare(operator, seconds(e), value);
  }
  const parts = property.split('.');
  const cost = property === COST_AMOUNT;
  if (like) {
    return (e) => {
      const actual = at(e.metadata, parts, cost);
      return actual !== undefined && contains(typeof actual === 'string' ? actual : jsonText(actual, property, true));
    };
  }
  // The server's CASE on jsonb_typeof: text compares as text, a number only with a number (or a
  // boolean as 1/0), a boolean only with a boolean; anything else (missing, null, object) never matches.
  const number = typeof value === 'string' ? undefined : Number(value);
  return (e) => {
    const actual = at(e.metadata, parts, cost);
    switch (typeof actual) {
      case 'string':
        return compare(operator, actual, needle);
      case 'number':
        return number !== undefined && compare(operator, actual, number);
      case 'boolean':
        return typeof value === 'boolean' && compare(operator, Number(actual), number as number);
      default:
        return false;
    }
  };
}

function clauseValue(value: unknown, path: string): ClauseValue {
  // Polar's schema: `str` (at most 1000 characters) | Int32 | bool.
  if (typeof value === 'string') {
    const length = [...value].length; // characters, as Python counts them
    if (length > 1000) throw new MeterDefinitionError(path, `expected at most 1000 characters, got ${length}`);
    return value;
  }
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
      throw new MeterDefinitionError(path, `expected an integer from -2147483648 to 2147483647 (Polar takes no fractions), got ${value}`);
    }
    return value;
  }
  throw new MeterDefinitionError(path, `expected a string, an integer or a boolean, got ${show(value)}`);
}

function propertyOf(value: unknown, path: string): string {
  // Polar strips one leading "metadata." (so "metadata.name" is the event's name).
  const property = typeof value === 'string' ? value.replace(/^metadata\./, '') : '';
  if (property === '') throw new MeterDefinitionError(path, `expected a property name, got ${show(value)}`);
  return property;
}

/** Marks an event the aggregation leaves out (no number at a sum/max/min/avg property). */
const SKIP = Symbol('skip');
type Reader = (event: MeterEvent) => number | string | undefined | typeof SKIP;

function reader(func: AggregationFunction, property: string): Reader {
  const cost = property === COST_AMOUNT;
  const parts = property.split('.');
  if (func === 'unique') {
    // `count(distinct metadata -> path)`: always a metadata path, missing values not counted.
    return (e) => {
      const v = at(e.metadata, parts, cost);
      return v === undefined ? undefined : jsonText(v, property, false);
    };
  }
  if (property === 'timestamp') return seconds;
  if (COLUMNS.has(property)) return () => SKIP; // name and source are not numbers: no event counts
  return (e) => {
    const v = at(e.metadata, parts, cost);
    return typeof v === 'number' ? v : SKIP;
  };
}

class RunningTally implements Tally {
  count = 0;
  /** Neumaier's compensated sum: the running total and its lost low-order part. */
  #sum = 0;
  #carry = 0;
  #max = -Infinity;
  #min = Infinity;
  readonly #keys = new Set<string>();
  constructor(
    readonly func: AggregationFunction,
    readonly filter: Predicate,
    readonly read: Reader,
  ) {}

  add(event: MeterEvent): boolean {
    if (!this.filter(event)) return false;
    const v = this.read(event);
    if (v === SKIP) return false;
    this.count++;
    if (typeof v === 'string') this.#keys.add(v);
    else if (v !== undefined && this.func !== 'count') {
      const t = this.#sum + v;
      this.#carry += Math.abs(this.#sum) >= Math.abs(v) ? this.#sum - t + v : v - t + this.#sum;
      this.#sum = t;
      if (v > this.#max) this.#max = v;
      if (v < this.#min) this.#min = v;
    }
    return true;
  }

  value(): number {
    return this.#of(this.count, this.#total(), this.#max, this.#min, this.#keys.size);
  }

  with(other: Tally): number {
    const o = other as RunningTally;
    let unique = this.#keys.size;
    for (const key of o.#keys) if (!this.#keys.has(key)) unique++;
    return this.#of(this.count + o.count, this.#total() + o.#total(), Math.max(this.#max, o.#max), Math.min(this.#min, o.#min), unique);
  }

  #total(): number {
    return this.#sum + this.#carry;
  }

  #of(count: number, total: number, max: number, min: number, unique: number): number {
    if (this.func === 'count') return count;
    if (this.func === 'unique') return unique;
    if (count === 0) return 0;
    return this.func === 'sum' ? total : this.func === 'avg' ? total / count : this.func === 'max' ? max : min;
  }
}

/** The event time as Postgres' `cast(extract(epoch from timestamp) as bigint)`: seconds, rounded. */
function seconds(event: MeterEvent): number {
  return Math.round(event.timestamp.getTime() / 1000);
}

function compare(operator: Operator, a: string | number, b: string | number): boolean {
  switch (operator) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    case 'gt':
      return a > b;
    case 'gte':
      return a >= b;
    case 'lt':
      return a < b;
    default:
      return a <= b;
  }
}

/**
 * The value at a dotted metadata path (`null` and a path through a non-object are missing). Polar
 * stores `_cost.amount` as a number and its API returns it as a decimal string: read as a number.
 */
function at(metadata: Readonly<Record<string, unknown>>, parts: readonly string[], cost: boolean): unknown {
  let value: unknown = metadata;
  for (const part of parts) {
    if (!isObject(value)) return undefined;
    value = value[part];
  }
  if (value === null) return undefined;
  return cost ? costNumber(value) : value;
}

function costNumber(value: unknown): unknown {
  if (typeof value !== 'string' || value.trim() === '') return value;
  const n = Number(value);
  return Number.isFinite(n) ? n : value;
}

/**
 * A value as Postgres' jsonb prints it (the identity of `count(distinct)`, and LIKE's text, where a
 * string at the path is its bare text): numbers in plain decimal, object keys shortest first,
 * `", "` and `": "` between items. For LIKE, `_cost.amount` prints as the float the server stored (`150.0`).
 */
function jsonText(value: unknown, path: string, like: boolean): string {
  if (path === COST_AMOUNT) value = costNumber(value);
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number': {
      const text = plain(value);
      return like && path === COST_AMOUNT && !text.includes('.') ? `${text}.0` : text;
    }
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((v) => jsonText(v, '', like)).join(', ')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort(byJsonbKeyOrder);
      return `{${keys.map((k) => `${JSON.stringify(k)}: ${jsonText(record[k], `${path}.${k}`, like)}`).join(', ')}}`;
    }
    default:
      return String(value);
  }
}

function byJsonbKeyOrder(a: string, b: string): number {
  const la = utf8Length(a);
  const lb = utf8Length(b);
  return la !== lb ? la - lb : a < b ? -1 : a > b ? 1 : 0;
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** A number in plain decimal, as Postgres' numeric prints it (JavaScript writes `1e21`, `1e-7`). */
function plain(n: number): string {
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const sign = n < 0 ? '-' : '';
  const mantissa = s.slice(sign.length, e);
  const dot = mantissa.indexOf('.');
  const digits = mantissa.replace('.', '');
  const point = (dot < 0 ? mantissa.length : dot) + Number(s.slice(e + 1));
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : isObject(value) ? 'an object' : Array.isArray(value) ? 'an array' : JSON.stringify(value);
}
