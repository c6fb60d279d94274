import { describe, it, expect } from 'vitest';
import { validate, object, number } from 'superstruct';
import type { Struct } from 'superstruct';
import { MetadataStruct, EventCreateStruct, TrackInputStruct, createTrackInputStruct, parseIso } from '../../src/validation/structs.js';
import { wireMicros } from '../../src/mirror/match.js';
import { parseIsoTimestamp } from '../../src/mirror/structs.js';

const UUID = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';
const UUID2 = '5a0e3b2c-7f41-4d8e-9c16-0b7d2e4f8a90';
/** A UUID of version 1: Polar's ids are UUID4 and the server refuses other versions. */
const UUID_V1 = '9b4f2c7e-1d0a-1c57-8f6e-2b1f0c9d3a11';

/** Every failure of `value` against `struct`, as `[path, message]`. */
function failuresOf(value: unknown, struct: Struct<any, any>): { path: string; message: string }[] {
  const [error] = validate(value, struct);
  if (!error) return [];
  return error.failures().map((f) => ({ path: f.path.join('.'), message: f.message }));
}
const pathsOf = (value: unknown, struct: Struct<any, any>): string[] => failuresOf(value, struct).map((f) => f.path);

describe('MetadataStruct', () => {
  it('accepts strings, integers, floats and booleans', () => {
    expect(pathsOf({ s: 'x', i: 12, f: 0.5, neg: -3, t: true, b: false }, MetadataStruct)).toEqual([]);
  });

  it('accepts an empty metadata object', () => {
    expect(pathsOf({}, MetadataStruct)).toEqual([]);
  });

  it('accepts a string of exactly 500 characters', () => {
    expect(pathsOf({ s: 'a'.repeat(500) }, MetadataStruct)).toEqual([]);
  });

  it('refuses a string of 501 characters, saying how many it got', () => {
    expect(failuresOf({ s: 'a'.repeat(501) }, MetadataStruct)).toEqual([{ path: 's', message: 'Expected at most 500 characters, but received 501' }]);
  });

  it('counts characters as code points like the server, so 500 emoji pass', () => {
    expect(pathsOf({ s: '😀'.repeat(500) }, MetadataStruct)).toEqual([]);
    expect(pathsOf({ s: '😀'.repeat(501) }, MetadataStruct)).toEqual(['s']);
  });

  it('refuses an empty string value', () => {
    expect(pathsOf({ s: '' }, MetadataStruct)).toEqual(['s']);
  });

  it('refuses a string containing NUL', () => {
    expect(failuresOf({ s: 'a\u0000b' }, MetadataStruct)).toEqual([{ path: 's', message: expect.stringContaining('NUL') }]);
  });

  it('refuses NaN, Infinity and -Infinity', () => {
    expect(pathsOf({ a: Number.NaN, b: Number.POSITIVE_INFINITY, c: Number.NEGATIVE_INFINITY }, MetadataStruct)).toEqual(['a', 'b', 'c']);
  });

  it('refuses integers beyond Number.MAX_SAFE_INTEGER', () => {
    expect(pathsOf({ big: 2 ** 60 }, MetadataStruct)).toEqual(['big']);
  });

  it('refuses null, undefined, arrays, bigints and functions as values', () => {
    expect(pathsOf({ n: null, u: undefined, a: [1], b: 1n, f: () => 1 }, MetadataStruct)).toEqual(['n', 'u', 'a', 'b', 'f']);
  });

  it('refuses a nested object with a message that says what is expected', () => {
    expect(failuresOf({ nested: { a: 1 } }, MetadataStruct)).toEqual([
      { path: 'nested', message: 'Expected a string, number or boolean, but received an object' },
    ]);
  });

  it('accepts the reserved _cost object', () => {
    expect(pathsOf({ _cost: { amount: 150, currency: 'usd' } }, MetadataStruct)).toEqual([]);
  });

  it('refuses a _cost with another currency, a string amount or an extra key (the server would drop it)', () => {
    expect(pathsOf({ _cost: { amount: 1, currency: 'eur' } }, MetadataStruct)).toEqual(['_cost.currency']);
    expect(pathsOf({ _cost: { amount: '150', currency: 'usd' } }, MetadataStruct)).toEqual(['_cost.amount']);
    expect(pathsOf({ _cost: { amount: 1, currency: 'usd', note: 'x' } }, MetadataStruct)).toEqual(['_cost.note']);
  });

  it('refuses a _cost that is not an object', () => {
    expect(failuresOf({ _cost: 5 }, MetadataStruct)).toEqual([{ path: '_cost', message: expect.stringMatching(/^Expected an object/) }]);
  });

  it('accepts a full _llm object with optional fields and a cost', () => {
    const llm = {
      vendor: 'openai',
      model: 'gpt-4o',
      prompt: 'hi',
      response: null,
      input_tokens: 10,
      cached_input_tokens: 2,
      output_tokens: 5,
      total_tokens: 15,
      cost: { amount: 0.02, currency: 'usd' },
    };
    expect(pathsOf({ _llm: llm }, MetadataStruct)).toEqual([]);
  });

  it('refuses an _llm with missing or fractional token counts', () => {
    expect(pathsOf({ _llm: { vendor: 'v', model: 'm', input_tokens: 1.5, total_tokens: 3 } }, MetadataStruct)).toEqual([
      '_llm.input_tokens',
      '_llm.output_tokens',
    ]);
  });

  it('refuses objects under keys other than _cost and _llm, and nested objects inside them', () => {
    expect(pathsOf({ _costs: { amount: 1, currency: 'usd' }, _cost: { amount: { x: 1 }, currency: 'usd' } }, MetadataStruct)).toEqual([
      '_costs',
      '_cost.amount',
    ]);
  });

  it('refuses an own __proto__ key without polluting any prototype', () => {
    const metadata = JSON.parse('{"__proto__": {"polluted": "yes"}, "ok": 1}') as unknown;
    expect(failuresOf(metadata, MetadataStruct)).toEqual([{ path: '__proto__', message: expect.stringContaining('"__proto__"') }]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses the keys constructor and prototype', () => {
    expect(pathsOf({ constructor: 'x', prototype: 'y' }, MetadataStruct)).toEqual(['constructor', 'prototype']);
  });

  it('refuses an empty key', () => {
    expect(pathsOf({ '': 'x' }, MetadataStruct)).toEqual(['']);
  });

  it('refuses a key containing NUL (the server refuses NUL in keys too)', () => {
    expect(pathsOf({ 'a\u0000b': 'x' }, MetadataStruct)).toEqual(['a\u0000b']);
  });

  it('accepts an object without prototype', () => {
    const metadata = Object.create(null) as Record<string, unknown>;
    metadata['a'] = 1;
    expect(pathsOf(metadata, MetadataStruct)).toEqual([]);
  });

  it('refuses class instances, Maps and arrays as the metadata object', () => {
    class Meta {
      a = 1;
    }
    for (const value of [new Meta(), new Map([['a', 1]]), [1, 2]]) {
      expect(pathsOf(value, MetadataStruct)).toEqual(['']);
    }
  });
});

/**
 * What the newest Polar server does with `_cost` and `_llm` (server/polar/event/schemas.py:
 * CostMetadata, LLMMetadata, EventMetadataInput, run with its pydantic 2.13.4), and what the client
 * does. Rows where the two differ are the server silently dropping or reinterpreting data.
 */
describe('reserved metadata, row by row against the newest server', () => {
  const cost = (amount: unknown, currency: unknown = 'usd') => ({ _cost: { amount, currency } });
  // [what, metadata, server accepts, client accepts]
  const rows: [string, unknown, boolean, boolean][] = [
    ['amount 150 (integer cents)', cost(150), true, true],
    ['a negative amount', cost(-5), true, true],
    ['-0', cost(-0), true, true],
    ['12 decimal places', cost(0.000000000001), true, true],
    ['-1e-12', cost(-1e-12), true, true],
    ['1.5e-7 (8 decimal places in exponent form)', cost(1.5e-7), true, true],
    ['13 decimal places', cost(1e-13), false, false],
    ['0.1 + 0.2 (17 decimal places)', cost(0.1 + 0.2), false, false],
    ['12345.678901234567 (5 + 12 digits)', cost(12345.678901234567), true, true],
    ['99999', cost(99999), true, true],
    ['99999.5', cost(99999.5), true, true],
    ['-99999.5', cost(-99999.5), true, true],
    ['100000 (6 digits before the point)', cost(100000), false, false],
    ['-100000', cost(-100000), false, false],
    ['1e20', cost(1e20), false, false],
    ['NaN', cost(Number.NaN), false, false],
    ['Infinity', cost(Number.POSITIVE_INFINITY), false, false],
    ['a boolean amount', cost(true), false, false],
    ['a null amount', cost(null), false, false],
    ['a decimal string amount (the client keeps one type: number)', cost('1.50'), true, false],
    ['currency "USD"', cost(1, 'USD'), false, false],
    ['currency "eur"', cost(1, 'eur'), false, false],
    ['currency "xusdx" (the server pattern is unanchored)', cost(1, 'xusdx'), true, false],
    ['a _cost extra key (the server drops it)', { _cost: { amount: 1, currency: 'usd', note: 'x' } }, true, false],
    ['a _cost without currency', { _cost: { amount: 1 } }, false, false],
    ['a _cost that is not an object', { _cost: 5 }, false, false],
  ];
  const llm = { vendor: 'v', model: 'm', input_tokens: 1, output_tokens: 2, total_tokens: 3 };
  const withLlm = (change: Record<string, unknown>) => ({ _llm: { ...llm, ...change } });
  const drop = (key: string) => ({ _llm: Object.fromEntries(Object.entries(llm).filter(([k]) => k !== key)) });
  rows.push(
    ['the smallest _llm', { _llm: llm }, true, true],
    ['_llm.cost (older servers; the newest drops it)', withLlm({ cost: { amount: 1, currency: 'usd' } }), true, true],
    ['_llm.cost that is not a cost', withLlm({ cost: 'free' }), true, false],
    ['_llm.prompt and response null', withLlm({ prompt: null, response: null }), true, true],
    ['a 1000-character prompt (no length limit)', withLlm({ prompt: 'x'.repeat(1000) }), true, true],
    ['an empty vendor', withLlm({ vendor: '' }), true, true],
    ['a vendor with NUL', withLlm({ vendor: 'a\u0000' }), false, false],
    ['a prompt with NUL', withLlm({ prompt: 'a\u0000' }), false, false],
    ['a numeric vendor', withLlm({ vendor: 5 }), false, false],
    ['fractional tokens', withLlm({ input_tokens: 1.5 }), false, false],
    ['negative tokens', withLlm({ input_tokens: -1 }), true, true],
    ['tokens as a string', withLlm({ input_tokens: '5' }), true, false],
    ['tokens beyond 2^53', withLlm({ input_tokens: 2 ** 70 }), true, false],
    ['cached_input_tokens null', withLlm({ cached_input_tokens: null }), false, false],
    ['no output_tokens', drop('output_tokens'), false, false],
    ['an _llm extra key (the server drops it)', withLlm({ foo: 'bar' }), true, false],
  );

  for (const [what, metadata, server, client] of rows) {
    it(`${client ? 'accepts' : 'refuses'} ${what}${server === client ? ' like the server' : ', which the server would accept'}`, () => {
      expect(pathsOf(metadata, MetadataStruct).length === 0).toBe(client);
    });
  }

  it('names the rule in the message', () => {
    expect(failuresOf(cost(100000), MetadataStruct)[0]?.message).toBe('Expected less than 100000 cents, but received 100000');
    expect(failuresOf(cost(0.1 + 0.2), MetadataStruct)[0]?.message).toBe('Expected at most 12 decimal places, but received 0.30000000000000004');
  });
});

describe('EventCreateStruct', () => {
  const valid = { name: 'api_call', external_customer_id: 'user_42' };

  it('accepts an event with external_customer_id', () => {
    expect(pathsOf(valid, EventCreateStruct)).toEqual([]);
  });

  it('accepts an event with every optional field and customer_id', () => {
    const event = {
      name: 'api_call',
      customer_id: UUID,
      member_id: UUID2,
      timestamp: '2025-06-02T14:03:07.123+02:00',
      metadata: { tokens: 12, _cost: { amount: 150, currency: 'usd' } },
      organization_id: UUID2,
      external_id: 'evt_01',
      parent_id: 'evt_00',
    };
    expect(pathsOf(event, EventCreateStruct)).toEqual([]);
  });

  it('refuses both customer references with a failure at each path naming both', () => {
    const result = failuresOf({ name: 'a', customer_id: UUID, external_customer_id: 'u' }, EventCreateStruct);
    expect(result.map((f) => f.path)).toEqual(['external_customer_id', 'customer_id']);
    for (const f of result) expect(f.message).toBe('Expected one of external_customer_id or customer_id, but received both');
  });

  it('refuses an event with neither customer reference, naming both paths', () => {
    const result = failuresOf({ name: 'a' }, EventCreateStruct);
    expect(result.map((f) => f.path)).toEqual(['external_customer_id', 'customer_id']);
    expect(result[0]?.message).toContain('neither');
  });

  it('accepts a name of 128 characters and refuses one of 129', () => {
    expect(pathsOf({ ...valid, name: 'n'.repeat(128) }, EventCreateStruct)).toEqual([]);
    expect(failuresOf({ ...valid, name: 'n'.repeat(129) }, EventCreateStruct)).toEqual([
      { path: 'name', message: 'Expected at most 128 characters, but received 129' },
    ]);
  });

  it('refuses an empty name', () => {
    expect(pathsOf({ ...valid, name: '' }, EventCreateStruct)).toEqual(['name']);
  });

  it('refuses a customer_id that is not a UUID, or a UUID of another version than 4', () => {
    expect(pathsOf({ name: 'a', customer_id: 'user_42' }, EventCreateStruct)).toEqual(['customer_id']);
    expect(failuresOf({ name: 'a', customer_id: UUID_V1 }, EventCreateStruct)).toEqual([
      { path: 'customer_id', message: `Expected a UUID v4, but received "${UUID_V1}"` },
    ]);
  });

  it('refuses an empty external_customer_id', () => {
    expect(pathsOf({ name: 'a', external_customer_id: '' }, EventCreateStruct)).toEqual(['external_customer_id']);
  });

  it('refuses a timestamp without an offset', () => {
    expect(pathsOf({ ...valid, timestamp: '2025-06-02T14:03:07.123' }, EventCreateStruct)).toEqual(['timestamp']);
  });

  it('takes an offset written Z, ±hh:mm or ±hhmm, as Polar does, and refuses others', () => {
    for (const timestamp of ['2025-06-02T14:03:07Z', '2025-06-02T14:03:07.123456789+02:00', '2025-06-02T14:03:07+0200']) {
      expect(pathsOf({ ...valid, timestamp }, EventCreateStruct)).toEqual([]);
    }
    for (const timestamp of ['2025-06-02T14:03:07+02', '2025-06-02T14:03:07+2:00', '2025-06-02T14:03:07']) {
      expect(pathsOf({ ...valid, timestamp }, EventCreateStruct)).toEqual(['timestamp']);
    }
  });

  it('refuses a timestamp that is not a real date', () => {
    expect(pathsOf({ ...valid, timestamp: '2025-02-30T00:00:00Z' }, EventCreateStruct)).toEqual(['timestamp']);
    expect(pathsOf({ ...valid, timestamp: '2025-06-02T24:00:00Z' }, EventCreateStruct)).toEqual(['timestamp']);
  });

  it('refuses a Date object as the wire timestamp', () => {
    expect(pathsOf({ ...valid, timestamp: new Date() }, EventCreateStruct)).toEqual(['timestamp']);
  });

  it('refuses an organization_id that is not a UUID', () => {
    expect(pathsOf({ ...valid, organization_id: 'org' }, EventCreateStruct)).toEqual(['organization_id']);
  });

  it('refuses an external_id longer than 256 characters and an empty one', () => {
    expect(pathsOf({ ...valid, external_id: 'x'.repeat(257) }, EventCreateStruct)).toEqual(['external_id']);
    expect(pathsOf({ ...valid, external_id: '' }, EventCreateStruct)).toEqual(['external_id']);
  });

  it('refuses an empty parent_id', () => {
    expect(pathsOf({ ...valid, parent_id: '' }, EventCreateStruct)).toEqual(['parent_id']);
  });

  it('refuses invalid metadata under the metadata path', () => {
    expect(pathsOf({ ...valid, metadata: { a: Number.NaN } }, EventCreateStruct)).toEqual(['metadata.a']);
  });

  it('refuses unknown keys, including camelCase ones, at their path', () => {
    expect(pathsOf({ ...valid, externalCustomerId: 'u' }, EventCreateStruct)).toEqual(['externalCustomerId']);
  });

  it('reports every failure at once', () => {
    expect(pathsOf({ name: '', customer_id: 'x', timestamp: 'now', extra: 1 }, EventCreateStruct)).toEqual(['name', 'customer_id', 'timestamp', 'extra']);
  });
});

describe('members on the wire', () => {
  // [what, event, failing paths] (the server keeps member_id only beside customer_id and
  // external_member_id only beside external_customer_id, and silently drops the other)
  const rows: [string, Record<string, unknown>, string[]][] = [
    ['member_id beside customer_id', { customer_id: UUID, member_id: UUID2 }, []],
    ['external_member_id beside external_customer_id', { external_customer_id: 'u', external_member_id: 'm' }, []],
    ['both member references', { customer_id: UUID, member_id: UUID2, external_member_id: 'm' }, ['external_member_id', 'member_id']],
    ['member_id beside external_customer_id', { external_customer_id: 'u', member_id: UUID2 }, ['member_id']],
    ['external_member_id beside customer_id', { customer_id: UUID, external_member_id: 'm' }, ['external_member_id']],
    ['a member_id that is not a UUID', { customer_id: UUID, member_id: 'm1' }, ['member_id']],
    ['a member_id of UUID version 1', { customer_id: UUID, member_id: UUID_V1 }, ['member_id']],
    ['an empty external_member_id', { external_customer_id: 'u', external_member_id: '' }, ['external_member_id']],
    ['an external_member_id with NUL', { external_customer_id: 'u', external_member_id: 'm\u0000' }, ['external_member_id']],
  ];
  for (const [what, refs, paths] of rows) {
    it(`${paths.length === 0 ? 'accepts' : 'refuses'} ${what}`, () => {
      expect(pathsOf({ name: 'a', ...refs }, EventCreateStruct)).toEqual(paths);
    });
  }

  it('says which references were given together', () => {
    expect(failuresOf({ name: 'a', customer_id: UUID, member_id: UUID2, external_member_id: 'm' }, EventCreateStruct)[0]?.message).toBe(
      'Expected at most one of external_member_id or member_id, but received both',
    );
    expect(failuresOf({ name: 'a', external_customer_id: 'u', member_id: UUID2 }, EventCreateStruct)[0]?.message).toBe(
      'Expected member_id beside customer_id, but received it beside external_customer_id',
    );
  });
});

describe('TrackInputStruct', () => {
  it('accepts a camelCase input with a Date timestamp', () => {
    const input = {
      name: 'api_call',
      externalCustomerId: 'user_42',
      externalMemberId: 'member_7',
      metadata: { tokens: 1 },
      timestamp: new Date('2025-01-01T00:00:00Z'),
      externalId: 'evt_1',
      parentId: 'evt_0',
      organizationId: UUID2,
    };
    expect(pathsOf(input, TrackInputStruct)).toEqual([]);
  });

  it('refuses an invalid Date', () => {
    expect(pathsOf({ name: 'a', customerId: UUID, timestamp: new Date(Number.NaN) }, TrackInputStruct)).toEqual(['timestamp']);
  });

  it('refuses a timestamp that is not a Date', () => {
    for (const timestamp of ['2025-01-01T00:00:00Z', 1735689600000, {}]) {
      expect(pathsOf({ name: 'a', customerId: UUID, timestamp }, TrackInputStruct)).toEqual(['timestamp']);
    }
  });

  it('refuses snake_case keys at their path', () => {
    expect(pathsOf({ name: 'a', externalCustomerId: 'u', external_customer_id: 'u' }, TrackInputStruct)).toEqual(['external_customer_id']);
  });

  it('refuses both customer references at both paths', () => {
    expect(pathsOf({ name: 'a', customerId: UUID, externalCustomerId: 'u' }, TrackInputStruct)).toEqual(['externalCustomerId', 'customerId']);
  });

  it('refuses both member references at both paths', () => {
    expect(pathsOf({ name: 'a', customerId: UUID, memberId: UUID2, externalMemberId: 'm' }, TrackInputStruct)).toEqual(['externalMemberId', 'memberId']);
  });

  it('with a metadata schema, reports its failures under metadata', () => {
    const struct = createTrackInputStruct(object({ plan: number() }));
    expect(pathsOf({ name: 'a', customerId: UUID, metadata: { plan: 'pro' } }, struct)).toEqual(['metadata.plan']);
  });

  it('with a metadata schema, still applies the metadata rules', () => {
    const struct = createTrackInputStruct(object({ plan: number() }));
    expect(pathsOf({ name: 'a', customerId: UUID, metadata: { plan: Number.POSITIVE_INFINITY } }, struct)).toContain('metadata.plan');
  });
});

describe('parseIso, the one ISO 8601 parser', () => {
  // What we send (EventCreateStruct), how a server event's Date is read (parseIsoTimestamp) and the
  // reconcile cursor's microseconds (wireMicros) take the same strings, by the same function.
  const texts = [
    '2025-06-02T14:03:07.123456Z',
    '2025-06-02T16:03:07.123456+02:00',
    '2025-06-02T16:33:07,123456+0230',
    '2025-06-02 14:03:07z',
    '2025-06-02T14:03Z',
    '2025-06-02T11:03:07-03',
    '2025-06-02T14:03:07',
    '2025-02-30T00:00:00Z',
    '2025-06-02T14:03:07+24:00',
    'yesterday',
  ];
  it('gives the same answer to all three readers', () => {
    const fallback = new Date(0);
    for (const text of texts) {
      const parsed = parseIso(text);
      expect(pathsOf({ name: 'a', external_customer_id: 'u', timestamp: text }, EventCreateStruct), text).toEqual(parsed ? [] : ['timestamp']);
      expect(parseIsoTimestamp(text)?.getTime(), text).toBe(parsed?.[0]);
      expect(wireMicros(text, fallback), text).toBe(parsed ? parsed[0] * 1000 + parsed[1] : 0);
    }
    expect(texts.filter((t) => parseIso(t)).length).toBe(5);
    expect(parseIso('2025-06-02T16:33:07,123456+0230')).toEqual([Date.parse('2025-06-02T14:03:07.123Z'), 456]);
  });
});
