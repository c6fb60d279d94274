import { create } from 'superstruct';
import { describe, expect, it } from 'vitest';
import { chooseCandidate, formatMicros, prepareServerEvent, sameContent, wireMicros } from '../../src/mirror/match.js';
import type { EventRecord } from '../../src/storage/schema.js';
import { newRecord } from '../../src/storage/serialize.js';
import { UserEventStruct } from '../../src/mirror/structs.js';
import { CUSTOMER_ID, userEventItem } from '../fixtures/events-list/polar-wire.js';

function local(overrides: Partial<EventRecord> & { seq: string }): EventRecord {
  const base = newRecord(
    { name: 'api_call', externalCustomerId: 'user_42', metadata: { tokens: 12 }, timestamp: new Date('2025-06-02T14:03:07.123Z') },
    overrides.seq,
    0,
  );
  return { ...base, ...overrides };
}

describe('wire timestamps', () => {
  it('reads the microseconds the server sends', () => {
    const micros = wireMicros('2025-06-02T14:03:07.123456+00:00', new Date(0));
    expect(micros).toBe(Date.parse('2025-06-02T14:03:07.123Z') * 1000 + 456);
  });

  it('applies the offset of the wire timestamp', () => {
    expect(wireMicros('2025-06-02T16:03:07.000001+02:00', new Date(0))).toBe(Date.parse('2025-06-02T14:03:07Z') * 1000 + 1);
  });

  it('formats microseconds back so the server reads the same instant', () => {
    const micros = Date.parse('2025-06-02T14:03:07.123Z') * 1000 + 455;
    expect(formatMicros(micros)).toBe('2025-06-02T14:03:07.123455Z');
    expect(wireMicros(formatMicros(micros), new Date(0))).toBe(micros);
  });
});

describe('fingerprints of server events', () => {
  it('equal the fingerprint of the local event despite reordered keys, a decimal-string cost and microseconds', () => {
    const tracked = newRecord(
      {
        name: 'api_call',
        externalCustomerId: 'user_42',
        metadata: { _cost: { amount: 150, currency: 'usd' }, model: 'gpt', tokens: 12 },
        timestamp: new Date('2025-06-02T14:03:07.123Z'),
      },
      'seq-1',
      0,
    );
    const item = userEventItem();
    const prepared = prepareServerEvent(create(item, UserEventStruct), item['timestamp']);
    expect(prepared.record.fingerprints).toContain(tracked.fingerprint);
  });

  it("cover both the external customer id and Polar's customer id", () => {
    const byId = newRecord(
      {
        name: 'api_call',
        customerId: CUSTOMER_ID,
        metadata: { tokens: 12, model: 'gpt', _cost: { amount: 150, currency: 'usd' } },
        timestamp: new Date('2025-06-02T14:03:07.123Z'),
      },
      'seq-2',
      0,
    );
    const item = userEventItem();
    const prepared = prepareServerEvent(create(item, UserEventStruct), item['timestamp']);
    expect(prepared.record.fingerprints).toContain(byId.fingerprint);
    expect(prepared.customerKeys).toEqual(['ext:user_42', `cus:${CUSTOMER_ID}`]);
  });

  it('differ when the metadata differs', () => {
    const tracked = newRecord(
      {
        name: 'api_call',
        externalCustomerId: 'user_42',
        metadata: { tokens: 13, model: 'gpt', _cost: { amount: 150, currency: 'usd' } },
        timestamp: new Date('2025-06-02T14:03:07.123Z'),
      },
      'seq-3',
      0,
    );
    const item = userEventItem();
    const prepared = prepareServerEvent(create(item, UserEventStruct), item['timestamp']);
    expect(prepared.record.fingerprints).not.toContain(tracked.fingerprint);
  });
});

describe('chooseCandidate', () => {
  it('prefers a sent event over sending and pending ones', () => {
    const chosen = chooseCandidate([
      local({ seq: 'a', externalId: 'a', status: 'pending' }),
      local({ seq: 'b', externalId: 'b', status: 'sending' }),
      local({ seq: 'c', externalId: 'c', status: 'sent' }),
    ]);
    expect(chosen?.externalId).toBe('c');
  });

  it('takes the oldest of equally good candidates', () => {
    const chosen = chooseCandidate([local({ seq: 'b', externalId: 'b', status: 'sent' }), local({ seq: 'a', externalId: 'a', status: 'sent' })]);
    expect(chosen?.externalId).toBe('a');
  });

  it('never chooses a confirmed or dead event', () => {
    expect(chooseCandidate([local({ seq: 'a', status: 'confirmed' }), local({ seq: 'b', status: 'dead' })])).toBeUndefined();
  });
});

describe('sameContent', () => {
  it('ignores key order', () => {
    expect(sameContent({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toBe(true);
  });

  it('sees a changed nested value', () => {
    expect(sameContent({ a: 1, b: { c: 'x' } }, { a: 1, b: { c: 'y' } })).toBe(false);
  });
});
