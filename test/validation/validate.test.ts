import { describe, it, expect } from 'vitest';
import { object, number, string, defaulted, define, StructError, validate } from 'superstruct';
import { validateTrackInput, validationFailures } from '../../src/validation/validate.js';
import { MetadataStruct } from '../../src/validation/structs.js';
import { EventValidationError } from '../../src/errors.js';

const UUID = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';
const ORG = '5a0e3b2c-7f41-4d8e-9c16-0b7d2e4f8a90';
const NOW = Date.parse('2025-06-02T12:00:00.000Z');

/** The EventValidationError that `fn` throws (fails the test if it throws anything else or nothing). */
function refusal(fn: () => unknown): EventValidationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EventValidationError);
    return error as EventValidationError;
  }
  throw new Error('expected an EventValidationError, but nothing was thrown');
}
const paths = (error: EventValidationError): string[] => error.failures.map((f) => f.path.join('.'));

describe('validateTrackInput', () => {
  it('returns the validated input', () => {
    const input = {
      name: 'api_call',
      externalCustomerId: 'user_42',
      metadata: { tokens: 12, _cost: { amount: 150, currency: 'usd' as const } },
      timestamp: new Date(NOW - 1000),
      externalId: 'evt_1',
      parentId: 'evt_0',
      organizationId: ORG,
    };
    expect(validateTrackInput(input, { now: NOW })).toEqual(input);
  });

  it('omits keys that the input left undefined', () => {
    const result = validateTrackInput({ name: 'a', customerId: UUID, metadata: undefined }, {});
    expect(Object.keys(result)).toEqual(['name', 'customerId']);
  });

  it('applies the default externalCustomerId when the input has no customer reference', () => {
    const result = validateTrackInput({ name: 'a' }, { defaults: { externalCustomerId: 'user_1' } });
    expect(result.externalCustomerId).toBe('user_1');
  });

  it('applies the default customerId when the input has no customer reference', () => {
    expect(validateTrackInput({ name: 'a' }, { defaults: { customerId: UUID } }).customerId).toBe(UUID);
  });

  it('does not apply a default customer reference when the input has its own', () => {
    const result = validateTrackInput({ name: 'a', customerId: UUID }, { defaults: { externalCustomerId: 'user_1' } });
    expect(result).toEqual({ name: 'a', customerId: UUID });
  });

  it('applies the default organizationId only when the input has none', () => {
    const other = '11111111-2222-4333-8444-555555555555';
    expect(validateTrackInput({ name: 'a', customerId: UUID }, { defaults: { organizationId: ORG } }).organizationId).toBe(ORG);
    expect(validateTrackInput({ name: 'a', customerId: UUID, organizationId: other }, { defaults: { organizationId: ORG } }).organizationId).toBe(other);
  });

  it('refuses an input without any customer reference and no defaults, naming both paths', () => {
    expect(paths(refusal(() => validateTrackInput({ name: 'a' }, {})))).toEqual(['externalCustomerId', 'customerId']);
  });

  it('refuses both customer references', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, externalCustomerId: 'u' }, {}));
    expect(paths(error)).toEqual(['externalCustomerId', 'customerId']);
    expect(error.failures[0]?.message).toContain('both');
  });

  it('refuses a 129-character name', () => {
    expect(paths(refusal(() => validateTrackInput({ name: 'x'.repeat(129), customerId: UUID }, {})))).toEqual(['name']);
  });

  it('refuses a 501-character metadata value', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata: { note: 'x'.repeat(501) } }, {}));
    expect(paths(error)).toEqual(['metadata.note']);
  });

  it('refuses NUL, NaN and Infinity in metadata', () => {
    const metadata = { nul: 'a\u0000', nan: Number.NaN, inf: Number.POSITIVE_INFINITY };
    expect(paths(refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata }, {})))).toEqual(['metadata.nul', 'metadata.nan', 'metadata.inf']);
  });

  it('refuses a __proto__ metadata key and leaves Object.prototype alone', () => {
    const metadata = JSON.parse('{"__proto__": {"isAdmin": true}}') as unknown;
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata }, {}));
    expect(paths(error)).toEqual(['metadata.__proto__']);
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
  });

  it('refuses nested objects in metadata other than _cost and _llm', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata: { deep: { a: 1 } } }, {}));
    expect(error.failures).toEqual([
      {
        path: ['metadata', 'deep'],
        message: 'Expected a string, number or boolean, but received an object',
      },
    ]);
  });

  it('refuses an invalid Date', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, timestamp: new Date('nope') }, {}));
    expect(paths(error)).toEqual(['timestamp']);
  });

  it('refuses a timestamp more than five minutes in the future, saying what it got', () => {
    const timestamp = new Date(NOW + 5 * 60_000 + 1);
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, timestamp }, { now: NOW }));
    expect(error.failures).toEqual([
      { path: ['timestamp'], message: 'Expected at most 5 minutes after now (2025-06-02T12:00:00.000Z), but received 2025-06-02T12:05:00.001Z' },
    ]);
  });

  it('refuses a timestamp before the year 1, which the server cannot hold', () => {
    const timestamp = new Date('-000001-12-31T23:59:59.999Z');
    expect(timestamp.getUTCFullYear()).toBeLessThan(1);
    expect(paths(refusal(() => validateTrackInput({ name: 'a', customerId: UUID, timestamp }, { now: NOW })))).toEqual(['timestamp']);
    expect(validateTrackInput({ name: 'a', customerId: UUID, timestamp: new Date('0001-01-01T00:00:00Z') }, { now: NOW }).timestamp).toBeInstanceOf(Date);
  });

  it('accepts a timestamp up to the future allowance', () => {
    const timestamp = new Date(NOW + 5 * 60_000);
    expect(validateTrackInput({ name: 'a', customerId: UUID, timestamp }, { now: NOW }).timestamp).toEqual(timestamp);
  });

  it('refuses unknown keys with a message naming the key', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, customer_id: UUID }, {}));
    expect(error.failures).toEqual([{ path: ['customer_id'], message: 'Unknown key "customer_id"' }]);
  });

  it('reports every failure, with string paths and the StructError as cause', () => {
    const error = refusal(() =>
      validateTrackInput({ name: '', customerId: 'not-a-uuid', metadata: { a: null, b: [1] }, timestamp: new Date(NOW + 3_600_000), extra: 1 }, { now: NOW }),
    );
    expect(paths(error)).toEqual(['name', 'customerId', 'metadata.a', 'metadata.b', 'extra', 'timestamp']);
    for (const failure of error.failures) for (const part of failure.path) expect(typeof part).toBe('string');
    expect(error.cause).toBeInstanceOf(StructError);
    expect(error.code).toBe('event-validation');
  });

  it('checks the metadata of an event against its schema, with failures under metadata', () => {
    const schemas = { signup: object({ plan: string(), seats: number() }) };
    const error = refusal(() => validateTrackInput({ name: 'signup', externalCustomerId: 'u', metadata: { plan: 'pro', seats: 'three' } }, { schemas }));
    expect(paths(error)).toEqual(['metadata.seats']);
  });

  it('checks an event with a schema but no metadata as if its metadata were empty', () => {
    const schemas = { signup: object({ plan: string() }) };
    const error = refusal(() => validateTrackInput({ name: 'signup', externalCustomerId: 'u' }, { schemas }));
    expect(paths(error)).toEqual(['metadata.plan']);
  });

  it('does not apply a schema to events of other names', () => {
    const schemas = { signup: object({ plan: string() }) };
    expect(validateTrackInput({ name: 'login', externalCustomerId: 'u', metadata: { any: 1 } }, { schemas }).metadata).toEqual({ any: 1 });
  });

  it('applies the coercion of an event schema, then the metadata rules', () => {
    const schemas = { signup: object({ plan: defaulted(string(), 'free') }) };
    expect(validateTrackInput({ name: 'signup', externalCustomerId: 'u', metadata: {} }, { schemas }).metadata).toEqual({ plan: 'free' });
    const bad = { signup: object({ plan: defaulted(string(), '') }) };
    expect(paths(refusal(() => validateTrackInput({ name: 'signup', externalCustomerId: 'u', metadata: {} }, { schemas: bad })))).toEqual(['metadata.plan']);
  });

  it('returns a copy that later mutation of the caller objects does not change', () => {
    const metadata = { tokens: 1, _cost: { amount: 5, currency: 'usd' as const } };
    const timestamp = new Date(NOW - 1000);
    const input = { name: 'a', customerId: UUID, metadata, timestamp };
    const result = validateTrackInput(input, { now: NOW });
    metadata.tokens = 99;
    metadata._cost.amount = 99;
    timestamp.setTime(0);
    input.name = 'changed';
    expect(result).toEqual({
      name: 'a',
      customerId: UUID,
      metadata: { tokens: 1, _cost: { amount: 5, currency: 'usd' } },
      timestamp: new Date(NOW - 1000),
    });
    expect(result.metadata).not.toBe(metadata);
  });

  it('returns plain objects even for input built with Object.create(null)', () => {
    const input = Object.assign(Object.create(null) as Record<string, unknown>, {
      name: 'a',
      customerId: UUID,
      metadata: Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 }),
    });
    const result = validateTrackInput(input, {});
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(result.metadata)).toBe(Object.prototype);
    expect(result).toEqual({ name: 'a', customerId: UUID, metadata: { a: 1 } });
  });

  it('reads each getter once, so validation and the result see the same value', () => {
    let reads = 0;
    const input = {
      customerId: UUID,
      get name() {
        reads++;
        return reads === 1 ? 'first' : 'x'.repeat(1000);
      },
    };
    expect(validateTrackInput(input, {}).name).toBe('first');
    expect(reads).toBe(1);
  });

  it('refuses a getter that throws with an EventValidationError at its path', () => {
    const metadata = {
      get boom(): number {
        throw new Error('kaboom');
      },
    };
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata }, {}));
    expect(paths(error)).toEqual(['metadata.boom']);
    expect(error.failures[0]?.message).toContain('kaboom');
  });

  it('refuses circular metadata without overflowing the stack', () => {
    const metadata: Record<string, unknown> = { a: 1 };
    metadata['self'] = metadata;
    expect(paths(refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata }, {})))).toEqual(['metadata.self']);
  });

  it('refuses Proxies whose traps throw, and revoked Proxies', () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('no keys');
        },
        getPrototypeOf() {
          throw new Error('no prototype');
        },
      },
    );
    const { proxy, revoke } = Proxy.revocable({ name: 'a' }, {});
    revoke();
    refusal(() => validateTrackInput(hostile, {}));
    refusal(() => validateTrackInput(proxy, {}));
    refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata: hostile }, {}));
    refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata: { x: proxy } }, {}));
  });

  it('wraps an exception thrown by a user schema into an EventValidationError', () => {
    const schemas = {
      a: define('explodes', () => {
        throw new RangeError('schema bug');
      }),
    };
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, metadata: { x: 1 } }, { schemas }));
    expect(error.cause).toBeInstanceOf(RangeError);
  });

  it('only ever throws EventValidationError, whatever it is given', () => {
    const weird: unknown[] = [
      null,
      undefined,
      0,
      42,
      Number.NaN,
      '',
      'event',
      true,
      Symbol('s'),
      10n,
      () => ({ name: 'a' }),
      [],
      [{ name: 'a', customerId: UUID }],
      new Date(),
      new Map(),
      Object.create(null),
      { name: Symbol('n'), customerId: UUID },
      { name: 'a', customerId: UUID, metadata: Object.create(null) as unknown, timestamp: Object.create(Date.prototype) as unknown },
      { name: 'a', customerId: UUID, metadata: [1, 2] },
      { name: 'a', customerId: UUID, metadata: { toString: null, valueOf: Symbol('v') } },
      { name: 'a', customerId: UUID, [Symbol('s')]: 1, metadata: new (class Meta {})() },
      { name: { toString: () => 'a' }, customerId: UUID },
      new Proxy(
        { name: 'a', customerId: UUID },
        {
          get() {
            throw new Error('get');
          },
        },
      ),
    ];
    for (const input of weird) refusal(() => validateTrackInput(input, {}));
  });

  it('survives hostile options', () => {
    const schemas = new Proxy({} as Record<string, never>, {
      getOwnPropertyDescriptor() {
        throw new Error('options trap');
      },
    });
    refusal(() => validateTrackInput({ name: 'a', customerId: UUID }, { schemas }));
  });
});

describe('validateTrackInput: members', () => {
  const MEMBER = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';

  it('returns the member reference it was given', () => {
    expect(validateTrackInput({ name: 'a', customerId: UUID, memberId: MEMBER }, {})).toEqual({ name: 'a', customerId: UUID, memberId: MEMBER });
    expect(validateTrackInput({ name: 'a', externalCustomerId: 'u', externalMemberId: 'alice' }, {})).toEqual({
      name: 'a',
      externalCustomerId: 'u',
      externalMemberId: 'alice',
    });
  });

  // [what, input, failing paths]
  const refused: [string, Record<string, unknown>, string[]][] = [
    ['both member references', { customerId: UUID, memberId: MEMBER, externalMemberId: 'alice' }, ['externalMemberId', 'memberId']],
    ['a memberId that is not a UUID', { customerId: UUID, memberId: 'alice' }, ['memberId']],
    ['a memberId of UUID version 1', { customerId: UUID, memberId: '0f1e2d3c-4b5a-1978-8695-a4b3c2d1e0f9' }, ['memberId']],
    ['an empty externalMemberId', { externalCustomerId: 'u', externalMemberId: '' }, ['externalMemberId']],
    ['a memberId beside externalCustomerId (the server would drop it)', { externalCustomerId: 'u', memberId: MEMBER }, ['memberId']],
    ['an externalMemberId beside customerId (the server would drop it)', { customerId: UUID, externalMemberId: 'alice' }, ['externalMemberId']],
  ];
  for (const [what, refs, expected] of refused) {
    it(`refuses ${what}`, () => {
      expect(paths(refusal(() => validateTrackInput({ name: 'a', ...refs }, {})))).toEqual(expected);
    });
  }

  it('names both paths and says both were given', () => {
    const error = refusal(() => validateTrackInput({ name: 'a', customerId: UUID, memberId: MEMBER, externalMemberId: 'alice' }, {}));
    expect(error.failures.map((f) => f.message)).toEqual([
      'Expected at most one of externalMemberId or memberId, but received both',
      'Expected at most one of externalMemberId or memberId, but received both',
    ]);
  });

  // [what, input refs, defaults, expected refs of the result]
  const defaulted: [string, Record<string, unknown>, Record<string, string>, Record<string, unknown>][] = [
    [
      'fills the member and the customer from defaults',
      {},
      { externalCustomerId: 'u', externalMemberId: 'alice' },
      { externalCustomerId: 'u', externalMemberId: 'alice' },
    ],
    ['fills memberId beside the default customerId', {}, { customerId: UUID, memberId: MEMBER }, { customerId: UUID, memberId: MEMBER }],
    [
      'fills the default member of the input customer kind',
      { externalCustomerId: 'v' },
      { externalMemberId: 'alice' },
      { externalCustomerId: 'v', externalMemberId: 'alice' },
    ],
    [
      'keeps the input own member over the default',
      { externalCustomerId: 'u', externalMemberId: 'bob' },
      { externalMemberId: 'alice' },
      { externalCustomerId: 'u', externalMemberId: 'bob' },
    ],
    [
      'does not add the other kind to an input that has a member',
      { customerId: UUID, memberId: MEMBER },
      { externalMemberId: 'alice' },
      { customerId: UUID, memberId: MEMBER },
    ],
    [
      'does not add a default member of the other kind than the customer',
      { customerId: UUID },
      { externalCustomerId: 'u', externalMemberId: 'alice' },
      { customerId: UUID },
    ],
    [
      'picks, of two default members, the one of the customer kind',
      {},
      { customerId: UUID, memberId: MEMBER, externalMemberId: 'alice' },
      { customerId: UUID, memberId: MEMBER },
    ],
  ];
  for (const [what, refs, defaults, expected] of defaulted) {
    it(what, () => {
      expect(validateTrackInput({ name: 'a', ...refs }, { defaults })).toEqual({ name: 'a', ...expected });
    });
  }
});

describe('validationFailures', () => {
  it('lists every failure of a StructError with string paths and an optional prefix', () => {
    const [error] = validate({ a: Number.NaN, b: { c: 1 } }, MetadataStruct);
    expect(error).toBeInstanceOf(StructError);
    expect(validationFailures(error!, ['metadata'])).toEqual([
      { path: ['metadata', 'a'], message: 'Expected a finite number (integers within ±2^53), but received NaN' },
      { path: ['metadata', 'b'], message: 'Expected a string, number or boolean, but received an object' },
    ]);
  });
});
