import { describe, expect, it } from 'vitest';
import { isPolarEventBufferError, MeterDefinitionError } from '../../src/errors.js';
import { compileMeter, type MeterEvent } from '../../src/meters/evaluate.js';

// One row per rule of README "Meters" (the server's source is the reference: polarsource/polar
// server/polar/meter/filter.py and aggregation.py). Each row would fail if its rule were dropped.

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);
const event = (metadata: Record<string, unknown>, more: Partial<MeterEvent> = {}): MeterEvent => ({
  name: 'api_call',
  timestamp: new Date(T0),
  metadata,
  ...more,
});
const one = (property: string, operator: string, value: unknown) => ({
  filter: { conjunction: 'and', clauses: [{ property, operator, value }] },
  aggregation: { func: 'count' },
});

type Row = [rule: string, property: string, operator: string, value: unknown, event: MeterEvent, matches: boolean];

const clauseRows: Row[] = [
  ['the metadata. prefix is optional', 'metadata.tokens', 'eq', 5, event({ tokens: 5 }), true],
  ['a bare key is a metadata key', 'tokens', 'eq', 5, event({ tokens: 5 }), true],
  ['metadata.name is the event name (the prefix is stripped first)', 'metadata.name', 'eq', 'api_call', event({ name: 'other' }), true],
  ['name compares as text', 'name', 'gt', 'api', event({}), true],
  ['name with a non-string value never matches', 'name', 'ne', 5, event({}), false],
  ['source is "user" for every buffered or mirrored event', 'source', 'eq', 'user', event({}), true],
  ['timestamp compares in whole epoch seconds', 'timestamp', 'eq', T0 / 1000, event({}, { timestamp: new Date(T0 + 400) }), true],
  ['timestamp seconds are rounded as Postgres casts to bigint', 'timestamp', 'gt', T0 / 1000, event({}, { timestamp: new Date(T0 + 500) }), true],
  ['timestamp with a string value never matches', 'timestamp', 'ne', 'x', event({}), false],
  ['timestamp like matches the digits of the seconds', 'timestamp', 'like', (T0 / 1000) % 1000, event({}), true],
  ['a string value compares with a string as text', 'model', 'gt', 'a', event({ model: 'b' }), true],
  ['text order is not numeric order', 'size', 'lt', '9', event({ size: '10' }), true],
  ['an integer value compares with a string as its text', 'plan', 'eq', 5, event({ plan: '5' }), true],
  ['a boolean value compares with a string as "t"/"f"', 'flag', 'eq', true, event({ flag: 't' }), true],
  ['... so "true" is not equal to true', 'flag', 'eq', true, event({ flag: 'true' }), false],
  ['an integer value compares with a number numerically', 'tokens', 'gt', 9, event({ tokens: 10 }), true],
  ['a float metadata value compares as a float', 'tokens', 'gt', 0, event({ tokens: 0.01 }), true],
  ['a boolean value compares with a number as 1/0', 'tokens', 'eq', true, event({ tokens: 1 }), true],
  ['a string value never matches a number', 'tokens', 'ne', '5', event({ tokens: 6 }), false],
  ['a boolean value compares with a boolean', 'cached', 'eq', false, event({ cached: false }), true],
  ['booleans are ordered false < true', 'cached', 'gt', false, event({ cached: true }), true],
  ['an integer value never matches a boolean', 'cached', 'eq', 1, event({ cached: true }), false],
  ['a string value never matches a boolean', 'cached', 'eq', 'true', event({ cached: true }), false],
  ['a missing key never matches, not even ne', 'tokens', 'ne', 5, event({}), false],
  ['a missing key never matches not_like', 'tokens', 'not_like', 'x', event({}), false],
  ['a null value is missing (Polar returns _llm.prompt as null)', '_llm.prompt', 'ne', 'x', event({ _llm: { prompt: null } }), false],
  ['an object value never matches a comparison', '_llm', 'eq', 'x', event({ _llm: { vendor: 'x' } }), false],
  ['like is a substring match', 'model', 'like', 'pt-4', event({ model: 'gpt-4o' }), true],
  ['like is case-sensitive', 'model', 'like', 'GPT', event({ model: 'gpt-4o' }), false],
  ['like takes % literally (no wildcard)', 'model', 'like', 'g%o', event({ model: 'gpt-4o' }), false],
  ['like takes _ literally (no wildcard)', 'model', 'like', 'gpt_4', event({ model: 'gpt-4o' }), false],
  ['... and matches a literal % in the value', 'rate', 'like', '5%', event({ rate: 'up 5%' }), true],
  ['not_like is the opposite of like on a present key', 'model', 'not_like', 'claude', event({ model: 'gpt-4o' }), true],
  ['like on a number reads its decimal text', 'tokens', 'like', 23, event({ tokens: 1234 }), true],
  ['like on a large number reads plain decimal (no exponent)', 'tokens', 'like', '000000', event({ tokens: 1e21 }), true],
  ['like with a boolean value looks for "t"/"f"', 'cached', 'like', true, event({ cached: true }), true],
  ["_cost.amount reads the API's decimal string as a number", '_cost.amount', 'gt', 100, event({ _cost: { amount: '150', currency: 'usd' } }), true],
  ['_cost.amount is not a string to compare', '_cost.amount', 'eq', '150', event({ _cost: { amount: '150', currency: 'usd' } }), false],
  ['_cost.amount likes as the stored float (150.0)', '_cost.amount', 'like', '150.0', event({ _cost: { amount: 150, currency: 'usd' } }), true],
  ['a dotted path reads into a nested object', '_llm.total_tokens', 'gte', 300, event({ _llm: { total_tokens: 300 } }), true],
  ['a dotted path through a non-object is missing', 'tokens.x', 'ne', 1, event({ tokens: 5 }), false],
  ['like on an object reads its jsonb text', '_cost', 'like', '"currency": "usd"', event({ _cost: { amount: 1, currency: 'usd' } }), true],
];

describe('meter filter clauses follow the server', () => {
  it.each(clauseRows)('%s', (_rule, property, operator, value, e, expected) => {
    expect(compileMeter(one(property, operator, value)).matches(e)).toBe(expected);
  });
});

describe('meter filters combine like the server', () => {
  const clause = (property: string, value: unknown) => ({ property, operator: 'eq', value });
  const nested = {
    conjunction: 'and',
    clauses: [clause('name', 'api_call'), { conjunction: 'or', clauses: [clause('model', 'a'), clause('model', 'b')] }],
  };
  it.each([
    ['and needs every clause', nested, event({ model: 'b' }), true],
    ['a nested or needs one of its clauses', nested, event({ model: 'c' }), false],
    ['the outer and still applies', nested, event({ model: 'a' }, { name: 'other' }), false],
    ['an empty and matches every event', { conjunction: 'and', clauses: [] }, event({}), true],
    ['an empty or matches every event', { conjunction: 'or', clauses: [] }, event({}), true],
  ])('%s', (_rule, filter, e, expected) => {
    expect(compileMeter({ filter, aggregation: { func: 'count' } }).matches(e)).toBe(expected);
  });
});

const all = { conjunction: 'and', clauses: [] };
const agg = (func: string, property?: string) => ({ filter: all, aggregation: property === undefined ? { func } : { func, property } });
const events = (...metadata: Record<string, unknown>[]) => metadata.map((m) => event(m));

describe('meter aggregations follow the server', () => {
  it.each([
    ['count counts the matching events', agg('count'), events({}, { a: 1 }, { a: 'x' }), 3],
    [
      'sum skips a string, a boolean and a missing value',
      agg('sum', 'tokens'),
      events({ tokens: 2 }, { tokens: '5' }, { tokens: true }, {}, { tokens: 0.5 }),
      2.5,
    ],
    ['sum takes the metadata. prefix', agg('sum', 'metadata.tokens'), events({ tokens: 2 }, { tokens: 3 }), 5],
    [
      'sum of _cost.amount reads decimal strings as numbers',
      agg('sum', '_cost.amount'),
      events({ _cost: { amount: '1.25', currency: 'usd' } }, { _cost: { amount: 2, currency: 'usd' } }),
      3.25,
    ],
    ['max over numbers only', agg('max', 'tokens'), events({ tokens: 2 }, { tokens: '99' }, { tokens: 7 }), 7],
    ['min over numbers only (a boolean is not 0)', agg('min', 'tokens'), events({ tokens: 2 }, { tokens: false }, { tokens: 7 }), 2],
    ['avg divides by the events with a number', agg('avg', 'tokens'), events({ tokens: 2 }, { tokens: 'x' }, { tokens: 4 }), 3],
    ['max/min/avg/sum of no events is 0', agg('max', 'tokens'), events({ tokens: 'x' }), 0],
    ['min of only negative values is negative', agg('min', 'delta'), events({ delta: -3 }, { delta: -1 }), -3],
    ['sum over timestamp adds epoch seconds', agg('sum', 'timestamp'), events({}, {}), (2 * T0) / 1000],
    ['sum over name counts no event', agg('sum', 'name'), events({}, {}), 0],
    ['unique counts distinct values', agg('unique', 'model'), events({ model: 'a' }, { model: 'b' }, { model: 'a' }), 2],
    ['unique ignores missing and null values', agg('unique', 'model'), events({ model: 'a' }, {}, { model: null }), 1],
    ['unique tells 1 from "1"', agg('unique', 'v'), events({ v: 1 }, { v: '1' }, { v: true }), 3],
    ['unique over name reads the metadata key "name"', agg('unique', 'name'), events({ name: 'x' }, { name: 'x' }, {}), 1],
    [
      'unique of _cost.amount equates "150" and 150',
      agg('unique', '_cost.amount'),
      events({ _cost: { amount: '150', currency: 'usd' } }, { _cost: { amount: 150, currency: 'usd' } }),
      1,
    ],
    ['unique of objects ignores key order', agg('unique', '_llm'), events({ _llm: { a: 1, b: 2 } }, { _llm: { b: 2, a: 1 } }), 1],
  ])('%s', (_rule, meter, list, expected) => {
    expect(compileMeter(meter).aggregate(list)).toBe(expected);
  });

  it('sum leaves events without a number out of the meter, so they are not matched', () => {
    const meter = compileMeter(agg('sum', 'tokens'));
    expect(meter.matches(event({ tokens: true }))).toBe(false);
    expect(meter.matches(event({ tokens: 1 }))).toBe(true);
    expect(compileMeter(agg('unique', 'tokens')).matches(event({}))).toBe(true);
  });

  it('a compensated sum keeps the small addends a naive sum loses', () => {
    const list = events({ x: 1e16 }, ...Array.from({ length: 10 }, () => ({ x: 1 })), { x: -1e16 });
    expect(compileMeter(agg('sum', 'x')).aggregate(list)).toBe(10);
  });

  it('two tallies together equal one tally over both sets', () => {
    for (const func of ['count', 'sum', 'max', 'min', 'avg', 'unique']) {
      const meter = compileMeter(agg(func, 'v'));
      const a = meter.tally();
      const b = meter.tally();
      const values = [3, 1, 4, 1, 5, 9, 2, 6];
      values.forEach((v, i) => void (i < 3 ? a : b).add(event({ v })));
      expect(a.with(b)).toBe(meter.aggregate(values.map((v) => event({ v }))));
      expect(meter.tally().with(b)).toBe(b.value());
    }
  });
});

describe('meters Polar would refuse are refused', () => {
  const clause = (c: Record<string, unknown>) => ({
    filter: { conjunction: 'and', clauses: [{ property: 'a', operator: 'eq', value: 1, ...c }] },
    aggregation: { func: 'count' },
  });
  it.each([
    [
      'an unknown operator',
      {
        filter: {
          conjunction: 'and',
          clauses: [
            { property: 'a', operator: 'eq', value: 1 },
            { property: 'a', operator: 'contains', value: 1 },
          ],
        },
        aggregation: { func: 'count' },
      },
      'filter.clauses.1.operator',
    ],
    ['a clause value that is an object', clause({ value: { a: 1 } }), 'filter.clauses.0.value'],
    ['a null clause value', clause({ value: null }), 'filter.clauses.0.value'],
    ['a fractional clause value (Polar takes Int32)', clause({ value: 1.5 }), 'filter.clauses.0.value'],
    ['an integer outside Int32', clause({ value: 2 ** 31 }), 'filter.clauses.0.value'],
    ['a string value over 1000 characters', clause({ value: 'x'.repeat(1001) }), 'filter.clauses.0.value'],
    ['... counted in characters, not UTF-16 units (1000 emoji pass; this is 1001)', clause({ value: '😀'.repeat(1001) }), 'filter.clauses.0.value'],
    ['an empty property', clause({ property: '' }), 'filter.clauses.0.property'],
    ['a property that is only the metadata. prefix', clause({ property: 'metadata.' }), 'filter.clauses.0.property'],
    [
      'a timestamp compared with a boolean (Postgres has no bigint > boolean)',
      clause({ property: 'timestamp', operator: 'gt', value: true }),
      'filter.clauses.0.value',
    ],
    ['an unknown conjunction', { filter: { conjunction: 'xor', clauses: [] }, aggregation: { func: 'count' } }, 'filter.conjunction'],
    [
      'a bad clause inside a nested filter',
      {
        filter: { conjunction: 'or', clauses: [{ conjunction: 'and', clauses: [{ property: 'a', operator: 'eq', value: [] }] }] },
        aggregation: { func: 'count' },
      },
      'filter.clauses.0.clauses.0.value',
    ],
    ['no filter', { aggregation: { func: 'count' } }, 'filter'],
    ['an unknown aggregation', { filter: all, aggregation: { func: 'median', property: 'a' } }, 'aggregation.func'],
    ['a sum without a property', { filter: all, aggregation: { func: 'sum' } }, 'aggregation.property'],
    ['not an object', 'count', ''],
  ])('%s', (_rule, meter, path) => {
    let error: unknown;
    try {
      compileMeter(meter);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MeterDefinitionError);
    const refused = error as MeterDefinitionError;
    expect(refused.path).toBe(path);
    expect(refused.code).toBe('meter-definition');
    expect(isPolarEventBufferError({ name: refused.name, code: refused.code })).toBe(true);
    expect(refused.message).toContain(path === '' ? '(meter)' : path);
  });

  it('takes a value of 1000 characters however many UTF-16 units they are', () => {
    expect(compileMeter(one('emoji', 'eq', '😀'.repeat(1000))).matches(event({ emoji: '😀'.repeat(1000) }))).toBe(true);
  });

  it('takes a meter as GET /v1/meters/ returns it, extra fields and all', () => {
    const meter = compileMeter({ id: 'm1', name: 'Tokens', unit: 'scalar', filter: all, aggregation: { func: 'sum', property: 'tokens' }, metadata: {} });
    expect(meter.aggregate(events({ tokens: 4 }))).toBe(4);
  });
});
