import { describe, expectTypeOf, test } from 'vitest';
import { number, object, optional, string } from 'superstruct';
import { createEventBuffer, httpTransport } from '../../src/index.js';
import type { BufferedEvent, EventBuffer, Metadata, TrackInputFor } from '../../src/index.js';

const transport = httpTransport({ baseUrl: 'http://127.0.0.1:1' });
const schemas = {
  api_call: object({ tokens: number() }),
  page_view: object({ path: string(), referrer: optional(string()) }),
};

type MetadataOf<Name extends string> = TrackInputFor<typeof schemas, Name>['metadata'];

describe('track() input with schemas', () => {
  const buffer = createEventBuffer({ transport, schemas });

  test('createEventBuffer infers the schemas into the buffer type', () => {
    expectTypeOf(buffer).toEqualTypeOf<EventBuffer<typeof schemas>>();
  });

  test('the metadata of a named event is inferred from its struct', () => {
    expectTypeOf<MetadataOf<'api_call'>>().toExtend<{ tokens: number }>();
    expectTypeOf<MetadataOf<'api_call'>['tokens']>().toEqualTypeOf<number>();
    expectTypeOf<MetadataOf<'page_view'>['path']>().toEqualTypeOf<string>();
    expectTypeOf<MetadataOf<'page_view'>['referrer']>().toEqualTypeOf<string | undefined>();
  });

  test('a metadata value of the wrong type is a compile error', () => {
    // @ts-expect-error tokens must be a number
    void buffer.track({ name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 'x' } });
  });

  test('a missing required metadata field is a compile error', () => {
    // @ts-expect-error tokens is required by the api_call struct
    void buffer.track({ name: 'api_call', externalCustomerId: 'u1', metadata: {} });
  });

  test('leaving out the metadata of a named event is a compile error', () => {
    // @ts-expect-error the api_call struct needs metadata
    void buffer.track({ name: 'api_call', externalCustomerId: 'u1' });
  });

  test('trackMany checks each input against the schema of its own name', () => {
    expectTypeOf(buffer.trackMany).toBeCallableWith([
      { name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 1 } },
      { name: 'page_view', externalCustomerId: 'u1', metadata: { path: '/' } },
      { name: 'signup', externalCustomerId: 'u1' },
    ]);
    void buffer.trackMany([
      { name: 'page_view', externalCustomerId: 'u1', metadata: { path: '/' } },
      // @ts-expect-error the api_call struct needs tokens, and page_view's metadata does not count for it
      { name: 'api_call', externalCustomerId: 'u1', metadata: { path: '/' } },
    ]);
  });

  test('the union of inputs keeps each name with its own metadata type', () => {
    type Input = TrackInputFor<typeof schemas>;
    expectTypeOf<Extract<Input, { name: 'api_call' }>['metadata']['tokens']>().toEqualTypeOf<number>();
    // @ts-expect-error api_call metadata in a page_view input
    const input: Input = { name: 'page_view', externalCustomerId: 'u1', metadata: { tokens: 1 } };
    void input;
  });

  test('trackMany accepts an array built at run time', () => {
    const inputs: TrackInputFor<typeof schemas>[] = [];
    expectTypeOf(buffer.trackMany).toBeCallableWith(inputs);
  });

  test('the wrong metadata in trackMany is a compile error', () => {
    // @ts-expect-error path must be a string
    void buffer.trackMany([{ name: 'page_view', externalCustomerId: 'u1', metadata: { path: 1 } }]);
  });

  test('valid input of a named event compiles and resolves to a BufferedEvent', () => {
    expectTypeOf(buffer.track({ name: 'api_call', externalCustomerId: 'u1', metadata: { tokens: 3 } })).toEqualTypeOf<Promise<BufferedEvent>>();
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'page_view', customerId: 'c', metadata: { path: '/' } });
  });

  test('events with no schema take any Polar metadata', () => {
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'signup', externalCustomerId: 'u1', metadata: { plan: 'pro' } });
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'signup', externalCustomerId: 'u1' });
    expectTypeOf<MetadataOf<'signup'>>().toEqualTypeOf<Metadata | undefined>();
  });

  test('events with no schema still refuse metadata values Polar does not accept', () => {
    // @ts-expect-error metadata values are strings, numbers, booleans or the reserved objects
    void buffer.track({ name: 'signup', externalCustomerId: 'u1', metadata: { when: new Date() as unknown as null } });
  });
});

describe('track() input without schemas', () => {
  const buffer = createEventBuffer({ transport });

  test('any event name and Polar metadata compile', () => {
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'anything', externalCustomerId: 'u1', metadata: { a: 1, b: 'x', c: true } });
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'anything' });
  });

  test('the metadata type is Polar metadata', () => {
    expectTypeOf<Parameters<typeof buffer.track>[0]['metadata']>().toEqualTypeOf<Metadata | undefined>();
  });

  test('a member reference of either kind compiles, as a string', () => {
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'seat_action', customerId: 'c', memberId: 'm' });
    expectTypeOf(buffer.track).toBeCallableWith({ name: 'seat_action', externalCustomerId: 'u1', externalMemberId: 'alice' });
    expectTypeOf<Parameters<typeof buffer.track>[0]['memberId']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Parameters<typeof buffer.track>[0]['externalMemberId']>().toEqualTypeOf<string | undefined>();
    // @ts-expect-error a member id is a string
    void buffer.track({ name: 'x', customerId: 'c', memberId: 7 });
  });

  test('the reserved metadata keys take their shapes', () => {
    expectTypeOf(buffer.track).toBeCallableWith({
      name: 'llm_call',
      metadata: {
        _cost: { amount: 0.25, currency: 'usd' },
        _llm: { vendor: 'openai', model: 'gpt-4o', input_tokens: 10, output_tokens: 5, total_tokens: 15, prompt: null },
      },
    });
    // @ts-expect-error the only currency is "usd"
    void buffer.track({ name: 'x', metadata: { _cost: { amount: 1, currency: 'eur' } } });
    // @ts-expect-error _cost.amount is a number of cents (the client refuses the server's decimal strings)
    void buffer.track({ name: 'x', metadata: { _cost: { amount: '1.50', currency: 'usd' } } });
  });

  test('an unknown input field is a compile error', () => {
    // @ts-expect-error `customer` is not a track() field
    void buffer.track({ name: 'x', customer: 'u1' });
  });
});
