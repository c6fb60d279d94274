import { describe, expect, it } from 'vitest';
import { EventValidationError } from '../../src/errors.js';
import { freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';
import { bufferFactory } from './support.js';

const startPolar = useMockPolar();
const make = bufferFactory();
const MEMBER = '5b0c1c7e-3f8a-4d2b-9e6f-1a2b3c4d5e6f';
const CUSTOMER = '0b6a1f8e-1111-4a2e-9c41-5e8f7a6b9d20';

describe('members', () => {
  it('sends the member of each event as Polar takes it: member_id beside customer_id, external_member_id beside external_customer_id', async () => {
    // Polar refuses a customer_id or member_id it does not know: both exist there first.
    const polar = await startPolar({ customers: [{ id: CUSTOMER }], members: [{ id: MEMBER, customer_id: CUSTOMER }] });
    const buffer = make(polar, { indexedDB: freshIndexedDB(), defaults: { externalMemberId: 'default-member' } });
    const a = await buffer.track({ name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'alice' });
    const b = await buffer.track({ name: 'seat.used', customerId: CUSTOMER, memberId: MEMBER });
    const c = await buffer.track({ name: 'seat.used', externalCustomerId: 'team_1' });
    expect([a.externalMemberId, b.memberId, c.externalMemberId]).toEqual(['alice', MEMBER, 'default-member']);
    expect(await buffer.flush()).toMatchObject({ sent: 3 });
    const sent = polar.ingestRequests()[0]!.body as { events: Record<string, unknown>[] };
    expect(sent.events.map((e) => [e.external_member_id, e.member_id])).toEqual([
      ['alice', undefined],
      [undefined, MEMBER],
      ['default-member', undefined],
    ]);
  });

  it('refuses both member references at once and stores nothing', async () => {
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport: { ingest: async () => ({ inserted: 0, duplicates: 0 }) } });
    const error = await buffer
      .track({ name: 'seat.used', customerId: CUSTOMER, memberId: MEMBER, externalMemberId: 'alice' } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    expect((error as EventValidationError).failures.map((f) => f.path.join('.'))).toEqual(expect.arrayContaining(['memberId', 'externalMemberId']));
    expect((await buffer.stats()).pending).toBe(0);
  });
});
