/**
 * `polar-event-buffer/relay`: the app's server side. Devices send their events here instead of to
 * Polar; the relay decides who each device is, holds the organization token, and turns many
 * devices' requests into few Polar requests. Web-standard `Request`/`Response`/`fetch` only: Node
 * >= 20, Bun, Deno, edge runtimes. Never part of a browser bundle.
 *
 * ```ts
 * import { createRelay, nodeListener } from 'polar-event-buffer/relay';
 * const relay = createRelay({ accessToken, authenticate, prefix: '/usage' });
 * http.createServer(nodeListener(relay));                  // Node
 * export const POST = (req: Request) => relay.fetch(req);  // fetch-style runtimes
 * ```
 *
 * @module
 */
export { createRelay } from './relay.js';
export { nodeListener } from './node.js';
export type { NodeRequestLike, NodeResponseLike } from './node.js';
export type { PerUserLimits, PolarCall, Relay, RelayClock, RelayEvent, RelayOptions, RelayRoute, RelaySession, RelayStats } from './types.js';
