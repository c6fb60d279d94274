import { describe, it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, validate, StructError } from 'superstruct';
import type { Struct } from 'superstruct';
import { UserEventStruct, CustomerStruct, SystemEventStruct, isSystemEvent, parseIsoTimestamp, snakeToCamel } from '../../src/mirror/structs.js';
import type { UserEvent } from '../../src/mirror/structs.js';

const UUID = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';
const UUID2 = '5a0e3b2c-7f41-4d8e-9c16-0b7d2e4f8a90';

const pathsOf = (value: unknown, struct: Struct<any, any>): string[] => {
  const [error] = validate(value, struct, { coerce: true });
  return error ? error.failures().map((f) => f.path.join('.')) : [];
};

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

  it('reads the member references, and a null one as null', () => {
    const event = create({ ...wire, member_id: null, external_member_id: 'alice' }, UserEventStruct);
    expect(event.memberId).toBeNull();
    expect(event.externalMemberId).toBe('alice');
  });

  it('refuses a member reference that is not a string', () => {
    expect(pathsOf({ ...wire, member_id: 7 }, UserEventStruct)).toEqual(['memberId']);
  });

  it('drops a null label and child_count but keeps null parent_id', () => {
    const event = create({ ...wire, label: null, child_count: null, parent_id: null }, UserEventStruct);
    expect('label' in event).toBe(false);
    expect('childCount' in event).toBe(false);
    expect(event.parentId).toBeNull();
  });

  it('fills customer fields the server left out with null', () => {
    const { customer_id: _a, customer: _b, external_customer_id: _c, ...bare } = wire;
    const event = create(bare, UserEventStruct);
    expect([event.customerId, event.customer, event.externalCustomerId]).toEqual([null, null, null]);
  });

  it('never lets a "__proto__" key of the wire set the prototype of the model', () => {
    const event = create(JSON.parse(JSON.stringify(wire).replace('{', '{"__proto__":{"polluted":1},')) as unknown, UserEventStruct);
    expect(Object.getPrototypeOf(event)).toBe(Object.prototype);
    expect((event as unknown as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses an event whose source is "system"', () => {
    expect(pathsOf({ ...wire, source: 'system' }, UserEventStruct)).toEqual(['source']);
  });

  it('refuses a list item that is not an object', () => {
    expect(pathsOf('event', UserEventStruct)).toEqual(['']);
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
        billing_address: { country: 'FR', postal_code: '75001' },
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
      billingAddress: { country: 'FR', postalCode: '75001' },
      taxId: ['911144442', 'us_ein'],
      organizationId: UUID2,
      deletedAt: null,
      avatarUrl: null,
      extraThing: 1,
    });
  });

  it('refuses a billing address without a country', () => {
    const customer = {
      id: UUID,
      created_at: '2025-01-01T00:00:00Z',
      metadata: {},
      email: 'a@b.co',
      email_verified: true,
      billing_address: { city: 'Paris' },
      organization_id: UUID2,
    };
    expect(pathsOf(customer, CustomerStruct)).toEqual(['billingAddress.country']);
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
  it('reads Z, +hh:mm, ±hhmm and microseconds', () => {
    expect(parseIsoTimestamp('2025-06-02T14:03:07.123456Z')?.toISOString()).toBe('2025-06-02T14:03:07.123Z');
    expect(parseIsoTimestamp('2025-06-02T16:03:07+02:00')?.toISOString()).toBe('2025-06-02T14:03:07.000Z');
    expect(parseIsoTimestamp('2025-06-02T16:33:07+0230')?.toISOString()).toBe('2025-06-02T14:03:07.000Z');
  });

  it('returns undefined for naive, malformed or impossible times', () => {
    for (const text of [
      '2025-06-02T14:03:07',
      'yesterday',
      '2025-13-01T00:00:00Z',
      '2025-02-30T00:00:00Z',
      '2025-06-02T24:00:00Z',
      '2025-06-02T14:03:07+24:00',
      // An offset of hours alone: Polar neither writes nor takes it (one grammar with what we send).
      '2025-06-02T11:03:07-03',
      '',
    ]) {
      expect(parseIsoTimestamp(text)).toBeUndefined();
    }
  });
});

describe('snakeToCamel', () => {
  it('camelizes inner underscores and keeps leading, doubled and digit ones', () => {
    expect(['some_new_field', '_cost', 'a__b', 'tax_2', 'already'].map(snakeToCamel)).toEqual(['someNewField', '_cost', 'a__b', 'tax_2', 'already']);
  });
});
