/**
 * Suite 2: bad input, property-based (fast-check). At least 10,000 generated inputs to track() per
 * run: valid ones, valid ones with ONE planted defect at a known path, and arbitrary values (wrong
 * types, huge strings, odd Unicode and NUL, deep objects, `__proto__` keys from JSON.parse,
 * invalid Dates, NaN/Infinity). Each is either
 * - accepted, and then it arrives at the mock server (the oracle: it answers 422 to anything of the
 *   wrong shape) equal to what was tracked, or
 * - refused with EventValidationError naming the path (the planted defect's path when there is one),
 * and nothing else is ever thrown; the queue never holds a record the server refuses (no 422, no
 * dead letter).
 *
 *   PROP_BATCHES  property runs (default 50), each tracking PROP_BATCH inputs (default 200) at once
 *   PROP_SEED     fast-check seed (default 42; "random" for a fresh one); printed on failure
 */
import fc from 'fast-check';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { EventValidationError } from '../../src/errors.js';
import { startMockPolar, type MockPolarServer } from '../../src/mock-server/index.js';
import { httpTransport } from '../../src/transport/http.js';
import type { BufferedEvent } from '../../src/types.js';
import { envInt } from '../helpers/seeded-random.js';

const BATCHES = envInt('PROP_BATCHES', 50);
const BATCH = envInt('PROP_BATCH', 200);
const SEED = envInt('PROP_SEED', 42);
const TOKEN = 'prop-token';

let server: MockPolarServer;
beforeAll(async () => {
  // Polar refuses a customer_id or member_id it does not know; the generated ids stand for
  // customers and members made through its API first.
  server = await startMockPolar({ token: TOKEN, registerUnknown: true });
});
afterAll(async () => {
  await server.close();
});

// ---- arbitraries ---------------------------------------------------------------------------------

const odd = fc.constantFrom('\ud800', '\udfff', '\u202e', '\ufeff', '\u200b', 'e\u0301', '𝔘', '👩‍👩‍👧', 'ß', 'İ', '\n', '"', '\\', '</script>');
/** Strings with odd Unicode (lone surrogates, RTL marks, astral, combining), never NUL. */
const oddString = (min: number, max: number): fc.Arbitrary<string> =>
  fc
    .array(fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), odd, fc.string({ minLength: 1, maxLength: 4 })), {
      minLength: 1,
      maxLength: max,
    })
    .map((parts) =>
      // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what this shows
      Array.from(parts.join('').replace(/\u0000/g, '·'))
        .slice(0, max)
        .join(''),
    )
    .filter((s) => [...s].length >= min);

const FORBIDDEN = new Set(['', '__proto__', 'constructor', 'prototype', '_cost', '_llm']);
const metadataKey = fc
  .oneof(fc.constantFrom('tokens', 'model', 'ok', 'path', 'clé', '日本', 'a b', '0', 'toString'), oddString(1, 20))
  .filter((k) => !FORBIDDEN.has(k));
const metadataValue = fc.oneof(
  oddString(1, 500),
  fc.constantFrom('x'.repeat(500), '𝔘'.repeat(500), 'é'.repeat(500)),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n) || Number.isSafeInteger(n)),
  fc.boolean(),
);
/**
 * Cents as the newest server takes them (Decimal(max_digits=17, decimal_places=12)): under 100,000,
 * at most 12 decimal places. m / 10^k with at most 15 significant digits prints as that decimal.
 */
const amount = fc
  .integer({ min: 0, max: 12 })
  .chain((k) => fc.integer({ min: -Math.min(10 ** (5 + k) - 1, 10 ** 15 - 1), max: Math.min(10 ** (5 + k) - 1, 10 ** 15 - 1) }).map((m) => m / 10 ** k));
const cost = fc.record({ amount, currency: fc.constant('usd') });
const llm = fc.record(
  {
    vendor: fc.string(),
    model: fc.string(),
    prompt: fc.option(fc.string(), { nil: null }),
    response: fc.option(fc.string(), { nil: null }),
    input_tokens: fc.nat(),
    cached_input_tokens: fc.nat(),
    output_tokens: fc.nat(),
    total_tokens: fc.nat(),
    // No `cost`: the client takes `_llm.cost` (older servers) but the newest server drops it, so
    // such an event could not arrive as tracked.
  },
  { requiredKeys: ['vendor', 'model', 'input_tokens', 'output_tokens', 'total_tokens'] },
);
const metadata = fc
  .tuple(fc.dictionary(metadataKey, metadataValue, { maxKeys: 6 }), fc.option(cost, { nil: undefined }), fc.option(llm, { nil: undefined }))
  .map(([md, c, l]) => {
    const out: Record<string, unknown> = { ...md };
    if (c) out['_cost'] = c;
    if (l) out['_llm'] = l;
    return out;
  });
// Polar's ids are UUID4: the server refuses other versions.
const uuid = fc.uuid({ version: 4 }).chain((u) => fc.constantFrom(u, u.toUpperCase()));
const validTimestamp = fc.date({ min: new Date('0100-01-01T00:00:00Z'), max: new Date(Date.now() - 60_000), noInvalidDate: true });

const validInput = fc
  .record(
    {
      name: oddString(1, 128),
      // A customer reference, and maybe a member of the same kind.
      customer: fc.oneof(
        fc.record({ externalCustomerId: oddString(1, 64), externalMemberId: oddString(1, 64) }, { requiredKeys: ['externalCustomerId'] }),
        fc.record({ customerId: uuid, memberId: uuid }, { requiredKeys: ['customerId'] }),
      ),
      metadata,
      timestamp: validTimestamp,
      externalId: oddString(1, 256),
    },
    { requiredKeys: ['name', 'customer'] },
  )
  .map(({ customer, ...rest }) => ({ ...rest, ...customer }) as Record<string, unknown>);

/** One defect at a known path; `paths` lists the paths of which at least one must be named. */
interface Defect {
  paths: string[][];
  apply(input: Record<string, unknown>): void;
}
const deep = (n: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = { v };
  return v;
};
const set = (key: string, value: unknown): Defect => ({ paths: [[key]], apply: (i) => void (i[key] = value) });
const setMeta = (key: string, value: unknown, path: string[] = ['metadata', key]): Defect => ({
  paths: [path],
  apply: (i) => {
    const md: Record<string, unknown> = {};
    for (const k of Object.keys((i['metadata'] as object) ?? {})) md[k] = (i['metadata'] as Record<string, unknown>)[k];
    Object.defineProperty(md, key, { value, enumerable: true, writable: true, configurable: true });
    i['metadata'] = md;
  },
});
const defect: fc.Arbitrary<Defect> = fc.oneof(
  fc.constantFrom<Defect>(
    set('name', ''),
    set('name', 'x'.repeat(129)),
    set('name', '𝔘'.repeat(129)),
    set('name', 'a\u0000b'),
    set('name', 'x'.repeat(100_000)),
    set('name', 42),
    set('name', null),
    set('name', undefined),
    set('name', { toString: () => 'x' }),
    set('metadata', []),
    set('metadata', 'tokens=1'),
    set('metadata', null),
    set('metadata', new Map([['a', 1]])),
    set('metadata', new (class Foo {})()),
    setMeta('n', Number.NaN),
    setMeta('n', Number.POSITIVE_INFINITY),
    setMeta('n', Number.NEGATIVE_INFINITY),
    setMeta('n', 2 ** 53),
    setMeta('s', ''),
    setMeta('s', 'x'.repeat(501)),
    setMeta('s', '𝔘'.repeat(501)),
    setMeta('s', 'nul\u0000inside'),
    setMeta('o', { nested: 1 }),
    setMeta('o', deep(1000)),
    setMeta('a', [1, 2]),
    setMeta('z', null),
    setMeta('d', new Date()),
    setMeta('b', 10n),
    setMeta('f', () => 1),
    setMeta('y', Symbol('s')),
    setMeta('__proto__', { polluted: true }),
    setMeta('constructor', 'x'),
    setMeta('', 'empty key'),
    setMeta('a\u0000b', 'NUL in the key'),
    setMeta('_cost', { amount: Number.NaN, currency: 'usd' }, ['metadata', '_cost', 'amount']),
    setMeta('_cost', { amount: 1, currency: 'eur' }, ['metadata', '_cost', 'currency']),
    setMeta('_cost', 'free', ['metadata', '_cost']),
    setMeta('_cost', { amount: 100_000, currency: 'usd' }, ['metadata', '_cost', 'amount']),
    setMeta('_cost', { amount: 0.1 + 0.2, currency: 'usd' }, ['metadata', '_cost', 'amount']),
    setMeta('_cost', { amount: 1e-13, currency: 'usd' }, ['metadata', '_cost', 'amount']),
    setMeta('_cost', { amount: '150', currency: 'usd' }, ['metadata', '_cost', 'amount']),
    setMeta('_cost', { amount: 1, currency: 'xusdx' }, ['metadata', '_cost', 'currency']),
    setMeta('_llm', { vendor: 'v\u0000', model: 'm', input_tokens: 1, output_tokens: 1, total_tokens: 2 }, ['metadata', '_llm', 'vendor']),
    setMeta('_llm', { vendor: 'v', model: 'm', input_tokens: 1.5, output_tokens: 1, total_tokens: 2 }, ['metadata', '_llm', 'input_tokens']),
    setMeta('_llm', { vendor: 'v', model: 'm', output_tokens: 1, total_tokens: 2 }, ['metadata', '_llm', 'input_tokens']),
    set('timestamp', new Date(Number.NaN)),
    set('timestamp', '2024-01-01T00:00:00Z'),
    set('timestamp', 1_700_000_000_000),
    set('timestamp', new Date(Date.now() + 3_600_000)),
    set('externalId', ''),
    set('externalId', 'x'.repeat(257)),
    set('externalId', 5),
    set('parentId', ''),
    set('parentId', 7),
    set('organizationId', 'not-a-uuid'),
    set('organizationId', '9b4f2c7e-1d0a-1c57-8f6e-2b1f0c9d3a11'),
    set('memberId', 'not-a-uuid'),
    set('externalMemberId', ''),
    set('unknownField', 1),
    {
      paths: [['__proto__']],
      apply: (i) => void Object.defineProperty(i, '__proto__', { value: { externalCustomerId: 'x' }, enumerable: true, configurable: true, writable: true }),
    },
    {
      // Both customer references.
      paths: [['externalCustomerId'], ['customerId']],
      apply: (i) => {
        i['externalCustomerId'] = 'cust';
        i['customerId'] = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';
      },
    },
    {
      // Both member references.
      paths: [['externalMemberId'], ['memberId']],
      apply: (i) => {
        i['externalMemberId'] = 'member';
        i['memberId'] = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
      },
    },
    {
      // A member of the other kind than the customer (the server would drop it).
      paths: [['externalMemberId'], ['memberId']],
      apply: (i) => {
        const byId = i['customerId'] !== undefined;
        delete i[byId ? 'memberId' : 'externalMemberId'];
        i[byId ? 'externalMemberId' : 'memberId'] = byId ? 'member' : '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
      },
    },
    {
      // Neither.
      paths: [['externalCustomerId'], ['customerId']],
      apply: (i) => {
        delete i['externalCustomerId'];
        delete i['customerId'];
      },
    },
  ),
  fc.string({ unit: 'binary', maxLength: 3 }).map((s) => set('customerId', `${s}-not-uuid`)),
);
const defective = fc.tuple(validInput, defect).map(([input, d]) => {
  d.apply(input);
  return { input: input as unknown, paths: d.paths };
});

const fromJson = fc
  .constantFrom(
    '{"name":"x","externalCustomerId":"c","metadata":{"__proto__":{"admin":true}}}',
    '{"name":"x","externalCustomerId":"c","__proto__":{"customerId":"9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11"}}',
    '{"__proto__":{"name":"x","externalCustomerId":"c"}}',
    '{"name":"x","externalCustomerId":"c","metadata":{"constructor":{"prototype":{"bad":1}}}}',
    '{"name":"x","externalCustomerId":"c","metadata":{"ok":"fine","n":1e308}}',
  )
  .map((json) => ({ input: JSON.parse(json) as unknown, paths: null }));

const anything = fc.oneof(
  fc.anything({
    withBigInt: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withTypedArray: true,
    withSparseArray: true,
    maxDepth: 4,
  }),
  fc.record({ name: fc.anything(), externalCustomerId: fc.anything(), metadata: fc.anything() }, { requiredKeys: [] }),
  fc.record({ name: fc.string(), externalCustomerId: fc.string(), metadata: fc.dictionary(fc.string(), fc.anything()) }),
);

/** A valid input with a Date from anywhere in the Date range (years -271821 to 275760): either outcome, never a 422. */
const anyDate = fc
  .tuple(validInput, fc.date({ noInvalidDate: true }))
  .map(([input, timestamp]) => ({ input: { ...input, timestamp } as unknown, paths: null }));

type Case = { input: unknown; paths: string[][] | null; expectValid?: boolean };
const oneCase: fc.Arbitrary<Case> = fc.oneof(
  { weight: 4, arbitrary: validInput.map((input) => ({ input: input as unknown, paths: null, expectValid: true })) },
  { weight: 4, arbitrary: defective },
  { weight: 1, arbitrary: fromJson },
  { weight: 1, arbitrary: anyDate },
  { weight: 3, arbitrary: anything.map((input) => ({ input, paths: null })) },
);

// ---- the oracle comparison ------------------------------------------------------------------------

/** Metadata as comparable JSON: keys sorted (own "__proto__" kept as data), `_cost.amount` as a number. */
function canonical(value: unknown, parentKey?: string, key?: string): unknown {
  if (value === null || typeof value !== 'object') {
    if (key === 'amount' && parentKey === '_cost' && typeof value === 'string') return Number(value);
    if (typeof value === 'number' && Object.is(value, -0)) return 0;
    return value;
  }
  return (
    Object.keys(value)
      .sort()
      // The server echoes absent optional fields (`_llm.prompt`/`response`) as null.
      .filter((k) => (value as Record<string, unknown>)[k] !== null)
      .map((k) => [k, canonical((value as Record<string, unknown>)[k], key, k)])
  );
}

function differences(
  input: Record<string, unknown>,
  event: BufferedEvent,
  stored: { event: Record<string, unknown>; externalId: string | null } | undefined,
): string[] {
  if (!stored) return ['not stored on the server'];
  const out: string[] = [];
  const e = stored.event;
  if (e['name'] !== input['name']) out.push(`name ${JSON.stringify(e['name'])} ≠ ${JSON.stringify(input['name'])}`);
  const ext = (input['externalCustomerId'] as string | undefined) ?? null;
  const cus = ext === null ? ((input['customerId'] as string | undefined)?.toLowerCase() ?? null) : null;
  if (e['external_customer_id'] !== ext) out.push(`external_customer_id ${JSON.stringify(e['external_customer_id'])} ≠ ${JSON.stringify(ext)}`);
  if (ext === null && e['customer_id'] !== cus) out.push(`customer_id ${JSON.stringify(e['customer_id'])} ≠ ${JSON.stringify(cus)}`);
  const member = (input['memberId'] as string | undefined)?.toLowerCase() ?? null;
  const externalMember = (input['externalMemberId'] as string | undefined) ?? null;
  if (e['member_id'] !== member) out.push(`member_id ${JSON.stringify(e['member_id'])} ≠ ${JSON.stringify(member)}`);
  if (e['external_member_id'] !== externalMember) {
    out.push(`external_member_id ${JSON.stringify(e['external_member_id'])} ≠ ${JSON.stringify(externalMember)}`);
  }
  const a = JSON.stringify(canonical(e['metadata'] ?? {}));
  const b = JSON.stringify(canonical(input['metadata'] ?? {}));
  if (a !== b) out.push(`metadata ${a.slice(0, 300)} ≠ ${b.slice(0, 300)}`);
  const ts = Date.parse(String(e['timestamp']));
  if (input['timestamp'] instanceof Date) {
    // A timestamp given to track() arrives exactly (these are all in the past).
    if (ts !== input['timestamp'].getTime()) out.push(`timestamp ${String(e['timestamp'])} ≠ ${input['timestamp'].toISOString()}`);
  } else {
    // The server's clock agrees with ours (within what its whole-second Date can show), so every
    // event, "now" ones included, must arrive with exactly the time it was tracked with.
    const want = event.timestamp.getTime();
    if (ts !== want) out.push(`timestamp ${String(e['timestamp'])} ≠ ${new Date(want).toISOString()}`);
  }
  const externalId = (input['externalId'] as string | undefined) ?? event.externalId;
  if (stored.externalId !== externalId) out.push(`external_id ${JSON.stringify(stored.externalId)} ≠ ${JSON.stringify(externalId)}`);
  return out;
}

function startsWith(path: string[], prefix: string[]): boolean {
  return prefix.every((p, i) => path[i] === p);
}

// ---- the property ---------------------------------------------------------------------------------

describe('bad input, property-based', () => {
  test(`${BATCHES * BATCH} generated inputs: each is accepted and stored as tracked, or refused with EventValidationError naming its path`, async () => {
    const started = Date.now();
    const tally = { inputs: 0, accepted: 0, refused: 0, plantedDefects: 0 };
    let batchNo = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(oneCase, { minLength: BATCH, maxLength: BATCH }), async (cases) => {
        batchNo++;
        server.reset();
        const buffer = createEventBuffer({
          transport: httpTransport({ baseUrl: server.url, headers: () => ({ Authorization: `Bearer ${TOKEN}` }) }),
          indexedDB: new IDBFactory(),
          dbName: `prop-${batchNo}`,
          autoFlush: false,
          batchSize: 1000,
          maxBatchBytes: 900_000,
          maxQueueSize: 100_000,
        });
        try {
          // Same inputs may repeat an externalId: the second track() returns the stored event.
          const outcomes = await Promise.all(
            cases.map((c) =>
              buffer.track(c.input as never).then(
                (event) => ({ ok: true as const, event }),
                (error: unknown) => ({ ok: false as const, error }),
              ),
            ),
          );
          const problems: string[] = [];
          const accepted = new Map<string, { input: Record<string, unknown>; event: BufferedEvent }>();
          outcomes.forEach((o, i) => {
            const c = cases[i]!;
            tally.inputs++;
            if (c.paths) tally.plantedDefects++;
            if (o.ok) {
              tally.accepted++;
              if (c.paths) problems.push(`accepted an input with a planted defect at ${JSON.stringify(c.paths)}`);
              if (!accepted.has(o.event.externalId)) accepted.set(o.event.externalId, { input: c.input as Record<string, unknown>, event: o.event });
              return;
            }
            tally.refused++;
            if (!(o.error instanceof EventValidationError)) {
              problems.push(`threw ${(o.error as Error)?.name ?? typeof o.error}: ${String((o.error as Error)?.message ?? o.error)}`);
              return;
            }
            const failures = o.error.failures;
            if (
              failures.length === 0 ||
              failures.some((f) => !Array.isArray(f.path) || f.path.some((p) => typeof p !== 'string') || typeof f.message !== 'string')
            ) {
              problems.push(`EventValidationError without well-formed failures: ${o.error.message}`);
            }
            // An externalId an earlier accepted input of this batch holds, for other content, is refused (contract rev. 3).
            const taken =
              failures.every((f) => f.path.join('.') === 'externalId') &&
              [...accepted.values()].some((a) => a.event.externalId === (c.input as Record<string, unknown>)['externalId']);
            if (c.expectValid && !taken) problems.push(`refused a valid input: ${o.error.message.slice(0, 300)}`);
            if (c.paths && !failures.some((f) => c.paths!.some((p) => startsWith(f.path, p)))) {
              problems.push(`the planted defect at ${JSON.stringify(c.paths)} was not named; failures: ${JSON.stringify(failures.map((f) => f.path))}`);
            }
          });
          const report = await buffer.flush();
          const rejectedRequests = server.ingestRequests().filter((r) => r.status !== 200);
          for (const r of rejectedRequests) problems.push(`the server answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
          const dead = await buffer.deadLetters();
          for (const d of dead) problems.push(`dead-lettered: ${d.error}`);
          const stored = new Map(server.stored().map((s) => [s.externalId, s] as const));
          for (const [externalId, { input, event }] of accepted) {
            const diff = differences(input, event, stored.get(externalId) as never);
            if (diff.length > 0) problems.push(`${externalId} did not arrive as tracked: ${diff.join('; ')}`);
          }
          if (report.sent !== accepted.size) problems.push(`flush sent ${report.sent}, but ${accepted.size} were accepted`);
          if (server.events.length !== accepted.size) problems.push(`the server holds ${server.events.length}, but ${accepted.size} were accepted`);
          if (problems.length > 0) throw new Error(problems.slice(0, 10).join('\n'));
        } finally {
          await buffer.close();
        }
      }),
      { numRuns: BATCHES, seed: SEED, endOnFailure: true, interruptAfterTimeLimit: 240_000 },
    );
    console.log(
      `[property] seed ${SEED}: inputs ${tally.inputs} (accepted ${tally.accepted}, refused ${tally.refused}, ` +
        `with a planted defect ${tally.plantedDefects}), ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(tally.inputs).toBeGreaterThanOrEqual(BATCHES * BATCH);
  }, 300_000);
});
