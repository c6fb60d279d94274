import { describe, expect, it } from 'vitest';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import { FULL_CUSTOMER } from '../fixtures/events-list/polar-wire.js';
import { useRig } from './support.js';

const rig = useRig();
const MEMBER = '5b0c1c7e-3f8a-4d2b-9e6f-1a2b3c4d5e6f';
const CUSTOMER = '0b6a1f8e-1111-4a2e-9c41-5e8f7a6b9d20';

/**
 * Polar lists events of one millisecond in no stable order. Each draw is smaller than the last, so
 * ties come newest first: the order in which content-only matching confirms events crosswise.
 */
function newestFirst(): () => number {
  let next = 1;
  return () => (next /= 2);
}

describe('members in the mirror', () => {
  it('keeps the members of server events and filters the merged view by member', async () => {
    const { buffer, mirror } = await rig(
      {},
      {
        // Polar refuses a customer_id or member_id it does not know: both exist there first.
        customers: [FULL_CUSTOMER, { id: CUSTOMER }],
        members: [{ id: MEMBER, customer_id: CUSTOMER }],
        random: newestFirst(),
      },
    );
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

  it('confirms each of two events that differ only by member with its own server copy, when Polar lists the later one first', async () => {
    const { buffer, mirror, polar } = await rig({}, { random: newestFirst() });
    const at = new Date(Date.now() - 60_000);
    const tracked = await buffer.trackMany([
      { name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'alice', timestamp: at },
      { name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'bob', timestamp: at },
    ]);
    await buffer.flush();
    expect(await mirror.reconcile()).toMatchObject({ fetched: 2, matched: 2 });
    // Which server id holds which member, from the server's own records.
    const serverIdOf = new Map(polar.events.map((e) => [e.external_member_id, e.id]));
    const local = await mirror.query({ externalCustomerId: 'team_1' });
    expect(local.map((e) => [e.externalId, e.status, e.serverId])).toEqual([
      [tracked[0]!.externalId, 'confirmed', serverIdOf.get('alice')],
      [tracked[1]!.externalId, 'confirmed', serverIdOf.get('bob')],
    ]);
  });

  it('prefers the event of the listed member over an identical one tracked without a member', async () => {
    const { buffer, mirror, polar } = await rig({}, { random: newestFirst() });
    const at = new Date(Date.now() - 60_000);
    const tracked = await buffer.trackMany([
      { name: 'seat.used', externalCustomerId: 'team_1', timestamp: at },
      { name: 'seat.used', externalCustomerId: 'team_1', externalMemberId: 'alice', timestamp: at },
    ]);
    await buffer.flush();
    // Alice's copy is listed first; the event without a member is the older candidate.
    expect(await mirror.reconcile()).toMatchObject({ fetched: 2, matched: 2 });
    const serverIdOf = new Map(polar.events.map((e) => [e.external_member_id, e.id]));
    const local = await mirror.query({ externalCustomerId: 'team_1' });
    expect(local.map((e) => [e.externalId, e.serverId])).toEqual([
      [tracked[0]!.externalId, serverIdOf.get(null)],
      [tracked[1]!.externalId, serverIdOf.get('alice')],
    ]);
  });

  it('confirms an event tracked without a member whose server copy has one (a relay sets the session member)', async () => {
    const { polar, another } = await rig();
    const http = httpTransport({ baseUrl: polar.url });
    // What the relay does for a session with members: the first one on events that name none.
    const relayLike: Transport = {
      ingest: (events, options) => http.ingest(events.map((e) => ({ ...e, external_member_id: e.external_member_id ?? 'alice' })) as never, options),
      list: (query, options) => http.list!(query, options),
    };
    const { buffer, mirror } = another({ transport: relayLike });
    const event = await buffer.track({ name: 'seat.used', externalCustomerId: 'team_1', timestamp: new Date(Date.now() - 60_000) });
    await buffer.flush();
    expect(polar.events.map((e) => e.external_member_id)).toEqual(['alice']);
    expect(await mirror.reconcile()).toMatchObject({ fetched: 1, matched: 1 });
    const [local] = await mirror.query({ externalCustomerId: 'team_1' });
    expect([local!.externalId, local!.status, local!.serverId]).toEqual([event.externalId, 'confirmed', polar.events[0]!.id]);
  });
});
