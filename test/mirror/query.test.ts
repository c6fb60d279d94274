import { describe, expect, it } from 'vitest';
import { TransportError } from '../../src/errors.js';
import type { Transport } from '../../src/transport/transport.js';
import { CUSTOMER_ID } from '../fixtures/events-list/polar-wire.js';
import { seed, useRig } from './support.js';

const rig = useRig();
const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;

describe('query()', () => {
  it('merges server events and local events not yet confirmed, each once, oldest first', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 2, (i) => T0 + i * 1000);
    const sent = await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', timestamp: new Date(T0 + 500) });
    await buffer.flush();
    await mirror.reconcile();
    const pending = await buffer.track({ name: 'api_call', externalCustomerId: 'user_42', timestamp: new Date(T0 + 1500) });
    const merged = await mirror.query();
    expect(merged.map((e) => e.timestamp.getTime())).toEqual([T0, T0 + 500, T0 + 1000, T0 + 1500]);
    expect(merged.map((e) => e.status)).toEqual(['confirmed', 'confirmed', 'confirmed', 'pending']);
    expect(merged[1]).toMatchObject({ externalId: sent.externalId, userEvent: { name: 'api_call' } });
    expect(merged[3]?.externalId).toBe(pending.externalId);
    expect(merged[3]?.userEvent).toBeUndefined();
  });

  it('shows a server event with no local record as a confirmed entry built from the UserEvent', async () => {
    const { polar, mirror } = await rig();
    const [id] = seed(polar, 1, () => T0);
    await mirror.reconcile();
    const [entry] = await mirror.query();
    expect(entry).toMatchObject({
      externalId: id,
      serverId: id,
      status: 'confirmed',
      externalCustomerId: 'user_42',
      customerId: CUSTOMER_ID,
      metadata: { n: 0 },
    });
  });

  it('leaves dead letters out unless the status filter asks for them', async () => {
    const { transport, another } = await rig();
    const refusing: Transport = {
      ingest: async () => {
        throw new TransportError('refused', { status: 422, detail: [{ msg: 'bad', loc: ['body', 'events', 0, 'name'] }] });
      },
      list: (query, options) => transport.list!(query, options),
    };
    const { buffer, mirror } = another({ transport: refusing });
    await buffer.track({ name: 'api_call', externalCustomerId: 'user_42' });
    await buffer.flush();
    expect(await mirror.query()).toEqual([]);
    expect((await mirror.query({ status: 'dead' })).map((e) => e.status)).toEqual(['dead']);
  });

  it("finds a customer's events by either reference once the server showed both", async () => {
    const { buffer, mirror } = await rig();
    await buffer.track({ name: 'api_call', customerId: CUSTOMER_ID, timestamp: new Date(T0) });
    await buffer.flush();
    await mirror.reconcile();
    await buffer.track({ name: 'later', customerId: CUSTOMER_ID });
    const byExternal = await mirror.query({ externalCustomerId: 'user_42' });
    expect(byExternal.map((e) => [e.name, e.status])).toEqual([
      ['api_call', 'confirmed'],
      ['later', 'pending'],
    ]);
    expect(await mirror.query({ customerId: CUSTOMER_ID })).toEqual(byExternal);
  });

  it('filters by customer, name, time, status and limit', async () => {
    const { polar, buffer, mirror } = await rig();
    seed(polar, 5, (i) => T0 + i * 1000);
    seed(polar, 2, (i) => T0 + i * 1000, { name: 'upload' });
    seed(polar, 3, (i) => T0 + i * 1000, { external_customer_id: 'someone_else' });
    await mirror.reconcile();
    await buffer.track({ name: 'upload', externalCustomerId: 'user_42', timestamp: new Date(T0 + 2500) });
    expect(await mirror.query({ externalCustomerId: 'someone_else' })).toHaveLength(3);
    expect((await mirror.query({ name: 'upload' })).map((e) => e.timestamp.getTime())).toEqual([T0, T0 + 1000, T0 + 2500]);
    const window = await mirror.query({ externalCustomerId: 'user_42', since: new Date(T0 + 1000), until: new Date(T0 + 3000) });
    expect(window.map((e) => e.timestamp.getTime())).toEqual([T0 + 1000, T0 + 1000, T0 + 2000, T0 + 2500]);
    expect((await mirror.query({ status: 'pending' })).map((e) => e.name)).toEqual(['upload']);
    expect((await mirror.query({ externalCustomerId: 'user_42', limit: 2 })).map((e) => e.timestamp.getTime())).toEqual([T0, T0]);
  });

  it('refuses a malformed filter with a TypeError', async () => {
    const { mirror } = await rig();
    await expect(mirror.query({ status: 'lost' as never })).rejects.toThrow(TypeError);
    await expect(mirror.query({ limit: 0 })).rejects.toThrow(/limit/);
    await expect(mirror.query({ since: 'yesterday' as never })).rejects.toThrow(/since/);
    await expect(mirror.query({ customer: 'x' } as never)).rejects.toThrow(/customer/);
  });
});
