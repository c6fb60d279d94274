import { describe, expect, it } from 'vitest';
import { useRig } from './support.js';

const rig = useRig();

describe('matching against what the newest server keeps', () => {
  it('confirms an event whose _llm.cost the server dropped, and resends nothing', async () => {
    const { polar, buffer, mirror } = await rig();
    const llm = { vendor: 'openai', model: 'gpt-4o', input_tokens: 10, output_tokens: 5, total_tokens: 15, cost: { amount: 0.42, currency: 'usd' as const } };
    const event = await buffer.track({ name: 'llm.call', externalCustomerId: 'user_42', metadata: { _llm: llm }, timestamp: new Date(Date.now() - 60_000) });
    await buffer.flush();
    // What the server stored has no cost: the newest Polar drops it.
    expect((polar.events[0]!.metadata as { _llm: Record<string, unknown> })._llm).not.toHaveProperty('cost');
    expect(await mirror.reconcile()).toMatchObject({ matched: 1 });
    const [confirmed] = await mirror.query({ externalCustomerId: 'user_42' });
    expect(confirmed).toMatchObject({ externalId: event.externalId, status: 'confirmed' });
    expect(polar.ingestRequests()).toHaveLength(1);
  });
});
