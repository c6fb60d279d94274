import { describe, it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, validate, object, number, StructError } from 'superstruct';
import type { Struct } from 'superstruct';
import {
  MetadataStruct,
  EventCreateStruct,
  TrackInputStruct,
  createTrackInputStruct,
  UserEventStruct,
  CustomerStruct,
  SystemEventStruct,
  isSystemEvent,
  toUserEventWire,
  parseIsoTimestamp,
} from '../../src/validation/structs.js';
import type { UserEvent } from '../../src/validation/structs.js';

const UUID = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';
const UUID2 = '5a0e3b2c-7f41-4d8e-9c16-0b7d2e4f8a90';

/** Every failure of `value` against `struct`, as `[path, message]`. */
function failuresOf(value: unknown, struct: Struct<any, any>): { path: string; message: string }[] {
  const [error] = validate(value, struct, { coerce: true });
  if (!error) return [];
  return error.failures().map((f) => ({ path: f.path.join('.'), message: f.message }));
}
const pathsOf = (value: unknown, struct: Struct<any, any>): string[] => failuresOf(value, struct).map((f) => f.path);

const VALUE_MESSAGE = 'Expected a string of 1-500 characters without NUL, an integer, a finite number or a boolean';

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

  it('refuses a string of 501 characters', () => {
    expect(failuresOf({ s: 'a'.repeat(501) }, MetadataStruct)).toEqual([
      { path: 's', message: expect.stringContaining('a string of 501 characters') },
    ]);
  });

  it('counts characters as code points like the server, so 500 emoji pass', () => {
    expect(pathsOf({ s: '😀'.repeat(500) }, MetadataStruct)).toEqual([]);
    expect(pathsOf({ s: '😀'.repeat(501) }, MetadataStruct)).toEqual(['s']);
  });

  it('refuses an empty string value', () => {
    expect(pathsOf({ s: '' }, MetadataStruct)).toEqual(['s']);
  });

  it('refuses a string containing NUL', () => {
    expect(failuresOf({ s: 'a\u0000b' }, MetadataStruct)).toEqual([
      { path: 's', message: expect.stringContaining('NUL') },
    ]);
  });

  it('refuses NaN, Infinity and -Infinity', () => {
    expect(pathsOf({ a: Number.NaN, b: Number.POSITIVE_INFINITY, c: Number.NEGATIVE_INFINITY }, MetadataStruct)).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('refuses integers beyond Number.MAX_SAFE_INTEGER', () => {
    expect(pathsOf({ big: 2 ** 60 }, MetadataStruct)).toEqual(['big']);
  });

  it('refuses null, undefined, arrays, bigints and functions as values', () => {
    expect(pathsOf({ n: null, u: undefined, a: [1], b: 1n, f: () => 1 }, MetadataStruct)).toEqual(['n', 'u', 'a', 'b', 'f']);
  });

  it('refuses a nested object with a message that says what is expected', () => {
    expect(failuresOf({ nested: { a: 1 } }, MetadataStruct)).toEqual([
      { path: 'nested', message: `${VALUE_MESSAGE}, but received an object` },
    ]);
  });

  it('accepts the reserved _cost object', () => {
    expect(pathsOf({ _cost: { amount: 150, currency: 'usd' } }, MetadataStruct)).toEqual([]);
  });

  it('refuses a _cost with another currency, a string amount or an extra key', () => {
    expect(pathsOf({ _cost: { amount: 1, currency: 'eur' } }, MetadataStruct)).toEqual(['_cost.currency']);
    expect(pathsOf({ _cost: { amount: '150', currency: 'usd' } }, MetadataStruct)).toEqual(['_cost.amount']);
    expect(pathsOf({ _cost: { amount: 1, currency: 'usd', note: 'x' } }, MetadataStruct)).toEqual(['_cost.note']);
  });

  it('refuses a _cost that is not an object', () => {
    expect(failuresOf({ _cost: 5 }, MetadataStruct)).toEqual([
      { path: '_cost', message: expect.stringMatching(/^Expected \{ amount: a finite number, currency: "usd" \}/) },
    ]);
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
    expect(
      pathsOf({ _llm: { vendor: 'v', model: 'm', input_tokens: 1.5, total_tokens: 3 } }, MetadataStruct),
    ).toEqual(['_llm.input_tokens', '_llm.output_tokens']);
  });

  it('refuses objects under keys other than _cost and _llm, and nested objects inside them', () => {
    expect(pathsOf({ _costs: { amount: 1, currency: 'usd' }, _cost: { amount: { x: 1 }, currency: 'usd' } }, MetadataStruct)).toEqual([
      '_costs',
      '_cost.amount',
    ]);
  });

  it('refuses an own __proto__ key without polluting any prototype', () => {
    const metadata = JSON.parse('{"__proto__": {"polluted": "yes"}, "ok": 1}') as unknown;
    const result = failuresOf(metadata, MetadataStruct);
    expect(result).toEqual([{ path: '__proto__', message: expect.stringContaining('refused') }]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses the keys constructor and prototype', () => {
    expect(pathsOf({ constructor: 'x', prototype: 'y' }, MetadataStruct)).toEqual(['constructor', 'prototype']);
  });

  it('refuses an empty key', () => {
    expect(pathsOf({ '': 'x' }, MetadataStruct)).toEqual(['']);
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

describe('EventCreateStruct', () => {
  const valid = { name: 'api_call', external_customer_id: 'user_42' };

  it('accepts an event with external_customer_id', () => {
    expect(pathsOf(valid, EventCreateStruct)).toEqual([]);
  });

  it('accepts an event with every optional field and customer_id', () => {
    const event = {
      name: 'api_call',
      customer_id: UUID,
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
    for (const f of result) expect(f.message).toMatch(/external_customer_id.*customer_id/);
  });

  it('refuses an event with neither customer reference, naming both paths', () => {
    const result = failuresOf({ name: 'a' }, EventCreateStruct);
    expect(result.map((f) => f.path)).toEqual(['external_customer_id', 'customer_id']);
    expect(result[0]?.message).toContain('neither');
  });

  it('accepts a name of 128 characters and refuses one of 129', () => {
    expect(pathsOf({ ...valid, name: 'n'.repeat(128) }, EventCreateStruct)).toEqual([]);
    expect(failuresOf({ ...valid, name: 'n'.repeat(129) }, EventCreateStruct)).toEqual([
      { path: 'name', message: expect.stringContaining('at most 128 characters') },
    ]);
  });

  it('refuses an empty name', () => {
    expect(pathsOf({ ...valid, name: '' }, EventCreateStruct)).toEqual(['name']);
  });

  it('refuses a customer_id that is not a UUID', () => {
    expect(pathsOf({ name: 'a', customer_id: 'user_42' }, EventCreateStruct)).toEqual(['customer_id']);
  });

  it('refuses an empty external_customer_id', () => {
    expect(pathsOf({ name: 'a', external_customer_id: '' }, EventCreateStruct)).toEqual(['external_customer_id']);
  });

  it('refuses a timestamp without an offset', () => {
    expect(pathsOf({ ...valid, timestamp: '2025-06-02T14:03:07.123' }, EventCreateStruct)).toEqual(['timestamp']);
  });

  it('refuses a timestamp that is not a real date', () => {
    expect(pathsOf({ ...valid, timestamp: '2025-02-30T00:00:00Z' }, EventCreateStruct)).toEqual(['timestamp']);
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

  it('refuses unknown keys, including camelCase ones, naming the key', () => {
    expect(failuresOf({ ...valid, externalCustomerId: 'u' }, EventCreateStruct)).toEqual([
      { path: 'externalCustomerId', message: expect.stringContaining('"externalCustomerId"') },
    ]);
  });

  it('reports every failure at once', () => {
    expect(pathsOf({ name: '', customer_id: 'x', timestamp: 'now', extra: 1 }, EventCreateStruct)).toEqual([
      'name',
      'customer_id',
      'timestamp',
      'extra',
    ]);
  });
});

describe('TrackInputStruct', () => {
  it('accepts a camelCase input with a Date timestamp', () => {
    const input = {
      name: 'api_call',
      externalCustomerId: 'user_42',
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

  it('refuses snake_case keys with a message naming the key', () => {
    expect(failuresOf({ name: 'a', external_customer_id: 'u' }, TrackInputStruct)).toContainEqual({
      path: 'external_customer_id',
      message: expect.stringContaining('Unknown key "external_customer_id"'),
    });
  });

  it('refuses both customer references at both paths', () => {
    expect(pathsOf({ name: 'a', customerId: UUID, externalCustomerId: 'u' }, TrackInputStruct)).toEqual([
      'externalCustomerId',
      'customerId',
    ]);
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

describe('UserEventStruct fixtures (Polar wire format)', async () => {
  const dir = fileURLToPath(new URL('../fixtures/user-event/', import.meta.url));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .sort();

  it('has fixtures to run', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    const fixture = (await import(`../fixtures/user-event/${file}.ts`)) as {
      data: unknown;
      output?: unknown;
      failures?: { path: string[] }[];
    };
    if (fixture.output !== undefined) {
      it(`parses ${file} into the camelCase model`, () => {
        expect(create(fixture.data, UserEventStruct)).toEqual(fixture.output);
      });
    } else {
      it(`refuses ${file} at the expected paths`, () => {
        const [error] = validate(fixture.data, UserEventStruct, { coerce: true });
        expect(error).toBeInstanceOf(StructError);
        const paths = error!.failures().map((f) => f.path.map(String));
        expect(paths).toEqual(expect.arrayContaining(fixture.failures!.map((f) => f.path)));
        expect(paths).toHaveLength(fixture.failures!.length);
      });
    }
  }
});

describe('UserEventStruct', () => {
  const wire = {
    id: UUID,
    timestamp: '2025-06-02T14:03:07.123456+00:00',
    organization_id: UUID2,
    customer_id: null,
    customer: null,
    external_customer_id: 'user_42',
    name: 'api_call',
    source: 'user',
    metadata: { tokens: 12 },
  };

  it('truncates microseconds to milliseconds and reads +00:00 as UTC', () => {
    expect(create(wire, UserEventStruct).timestamp.toISOString()).toBe('2025-06-02T14:03:07.123Z');
  });

  it('keeps unknown fields with camelCase keys and their values untouched', () => {
    const event = create({ ...wire, brand_new: { inner_key: [1, 2] } }, UserEventStruct) as UserEvent & Record<string, unknown>;
    expect(event['brandNew']).toEqual({ inner_key: [1, 2] });
  });

  it('keeps metadata exactly as the server sent it', () => {
    const metadata = { snake_key: 1, _cost: { amount: '150', currency: 'usd' }, _llm: { prompt: null } };
    expect(create({ ...wire, metadata }, UserEventStruct).metadata).toEqual(metadata);
  });

  it('drops a null label and child_count but keeps null parent_id', () => {
    const event = create({ ...wire, label: null, child_count: null, parent_id: null }, UserEventStruct);
    expect('label' in event).toBe(false);
    expect('childCount' in event).toBe(false);
    expect(event.parentId).toBeNull();
  });

  it('refuses an event whose source is "system"', () => {
    expect(pathsOf({ ...wire, source: 'system' }, UserEventStruct)).toEqual(['source']);
  });

  it('refuses a list item that is not an object', () => {
    expect(pathsOf('event', UserEventStruct)).toEqual(['']);
  });

  it('round-trips through toUserEventWire', () => {
    const event = create({ ...wire, child_count: 2, some_new_field: 'x' }, UserEventStruct);
    const back = toUserEventWire(event);
    expect(back).toEqual({
      ...wire,
      timestamp: '2025-06-02T14:03:07.123Z',
      child_count: 2,
      some_new_field: 'x',
    });
    expect(create(JSON.parse(JSON.stringify(back)), UserEventStruct)).toEqual(event);
  });

  it('also accepts an already parsed camelCase model', () => {
    const event = create(wire, UserEventStruct);
    expect(create(event, UserEventStruct)).toEqual(event);
  });
});

describe('CustomerStruct', () => {
  it('parses a wire customer into camelCase with Dates and keeps unknown fields', () => {
    const customer = create(
      {
        id: UUID,
        created_at: '2025-01-01T00:00:00.000000Z',
        modified_at: '2025-01-02T00:00:00.000000+00:00',
        metadata: { tier: 'gold' },
        external_id: null,
        email: 'a@b.co',
        email_verified: true,
        name: null,
        billing_address: { country: 'FR' },
        tax_id: ['911144442', 'us_ein'],
        organization_id: UUID2,
        deleted_at: null,
        avatar_url: null,
        extra_thing: 1,
      },
      CustomerStruct,
    );
    expect(customer).toEqual({
      id: UUID,
      createdAt: new Date('2025-01-01T00:00:00.000Z'),
      modifiedAt: new Date('2025-01-02T00:00:00.000Z'),
      metadata: { tier: 'gold' },
      externalId: null,
      email: 'a@b.co',
      emailVerified: true,
      name: null,
      billingAddress: { country: 'FR' },
      taxId: ['911144442', 'us_ein'],
      organizationId: UUID2,
      deletedAt: null,
      avatarUrl: null,
      extraThing: 1,
    });
  });

  it('refuses a billing address without a country', () => {
    const [error] = validate(
      {
        id: UUID,
        created_at: '2025-01-01T00:00:00Z',
        metadata: {},
        email: 'a@b.co',
        email_verified: true,
        billing_address: { city: 'Paris' },
        organization_id: UUID2,
      },
      CustomerStruct,
      { coerce: true },
    );
    expect(error?.failures().map((f) => f.path.join('.'))).toEqual(['billingAddress.country']);
  });
});

describe('system events', () => {
  const system = {
    id: UUID,
    timestamp: '2025-06-02T14:03:07.123456+00:00',
    organization_id: UUID2,
    customer_id: UUID,
    name: 'meter.credited',
    source: 'system',
    metadata: { meter_id: 'm1', units: 10 },
  };

  it('isSystemEvent recognises source "system" and nothing else', () => {
    expect(isSystemEvent(system)).toBe(true);
    expect(isSystemEvent({ ...system, source: 'user' })).toBe(false);
    expect(isSystemEvent(null)).toBe(false);
    expect(isSystemEvent('system')).toBe(false);
  });

  it('SystemEventStruct parses a system event and refuses a user event', () => {
    const event = create(system, SystemEventStruct);
    expect(event.timestamp).toEqual(new Date('2025-06-02T14:03:07.123Z'));
    expect(event['customerId']).toBe(UUID);
    expect(pathsOf({ ...system, source: 'user' }, SystemEventStruct)).toEqual(['source']);
  });
});

describe('parseIsoTimestamp', () => {
  it('reads Z, +hh:mm and microseconds', () => {
    expect(parseIsoTimestamp('2025-06-02T14:03:07.123456Z')?.toISOString()).toBe('2025-06-02T14:03:07.123Z');
    expect(parseIsoTimestamp('2025-06-02T16:03:07+02:00')?.toISOString()).toBe('2025-06-02T14:03:07.000Z');
  });

  it('returns undefined for naive, malformed or impossible times', () => {
    for (const text of ['2025-06-02T14:03:07', 'yesterday', '2025-13-01T00:00:00Z', '2025-06-02T24:00:00Z', '']) {
      expect(parseIsoTimestamp(text)).toBeUndefined();
    }
  });

  it('in strict mode refuses offsets not written Z or ±hh:mm', () => {
    expect(parseIsoTimestamp('2025-06-02T14:03:07+0200', true)).toBeUndefined();
    expect(parseIsoTimestamp('2025-06-02T14:03:07+0200')).toBeDefined();
  });
});
