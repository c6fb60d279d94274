import { afterEach } from 'vitest';
import { startMockPolar, type MockPolarOptions, type MockPolarServer } from '../../src/mock-server/index.js';

/** Starts a mock Polar on an ephemeral 127.0.0.1 port for this test; closed after it. */
export function useMockPolar(): (options?: MockPolarOptions) => Promise<MockPolarServer> {
  const servers: MockPolarServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  return async (options) => {
    const server = await startMockPolar(options);
    servers.push(server);
    return server;
  };
}
