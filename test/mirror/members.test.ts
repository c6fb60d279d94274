import { describe, expect, it } from 'vitest';
import { useRig } from './support.js';

const rig = useRig();
const MEMBER = '5b0c1c7e-3f8a-4d2b-9e6f-1a2b3c4d5e6f';
const CUSTOMER = '0b6a1f8e-1111-4a2e-9c41-5e8f7a6b9d20';

describe('members in the mirror', () => {
  it('keeps the members of server events and filters the merged view by member', async () => {
    const { buffer, mirror } = await rig();
    const at = new Date(Date.now() - 60_000);
    await buffer.trackMany([
      { name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'alice', timestamp: at },
      { name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'bob', timestamp: at },
      { name: 'seat.used', customerId: CUSTOMER, memberId: MEMBER, timestamp: at },
    ]);
    await buffer.flush();
    await mirror.reconcile();
    // Waiting, not on the server yet: in the view too.
    const pending = await buffer.track({ name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'alice' });
    const alice = await mirror.query({ externalCustomerId: 'team_1', externalMemberId: 'alice' });
    expect(alice.map((e) => [e.status, e.externalMemberId])).toEqual([
      ['confirmed', 'alice'],
      ['pending', 'alice'],
    ]);
    expect(alice[1]!.externalId).toBe(pending.externalId);
    expect(alice[0]!.userEvent?.externalMemberId).toBe('alice');
    const byId = await mirror.query({ memberId: MEMBER });
    expect(byId.map((e) => [e.status, e.memberId, e.userEvent?.memberId])).toEqual([['confirmed', MEMBER, MEMBER]]);
    await expect(mirror.query({ memberId: MEMBER, externalMemberId: 'alice' })).rejects.toThrow(/memberId/);
  });
});
