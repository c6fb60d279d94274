import { createEventBuffer } from '../../src/event-buffer.js';
import { createMirror } from '../../src/mirror/mirror.js';
import type { Mirror, MirrorOptions } from '../../src/mirror/types.js';
import type { MockPolarOptions, MockPolarServer } from '../../src/mock-server/index.js';
import type { Clock, EventBufferOptions } from '../../src/options.js';
import { httpTransport } from '../../src/transport/http.js';
import type { Transport } from '../../src/transport/transport.js';
import type { EventBuffer } from '../../src/types.js';
import { FULL_CUSTOMER } from '../fixtures/events-list/polar-wire.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

/** A clock the test moves by hand; timers are the real ones. */
export class MovableClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    return globalThis.setTimeout(callback, ms);
  }
  clearTimeout(handle: unknown): void {
    globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>);
  }
}

/** Options of a buffer and of its mirror (`retention`, `confirmGracePeriod`, `lookBack`) together. */
export type RigOptions = Partial<EventBufferOptions> & MirrorOptions;

export interface Opened {
  buffer: EventBuffer;
  mirror: Mirror;
}

export interface Rig extends Opened {
  polar: MockPolarServer;
  transport: Transport;
  /** Another buffer and its mirror on a fresh database, same server. */
  another(options?: RigOptions): Opened;
}

/** Per test: a mock Polar (with the full customer `user_42`) and buffers (each with a mirror) over real HTTP. */
export function useRig(): (options?: RigOptions, polarOptions?: MockPolarOptions) => Promise<Rig> {
  const startPolar = useMockPolar();
  const close = autoClose();
  return async (options = {}, polarOptions = {}) => {
    const polar = await startPolar({ customers: [FULL_CUSTOMER], ...polarOptions });
    const transport = httpTransport({ baseUrl: polar.url });
    const make = (extra: RigOptions = {}): Opened => {
      const { retention, confirmGracePeriod, lookBack, ...rest } = { ...options, ...extra };
      const buffer = createEventBuffer({
        transport,
        indexedDB: freshIndexedDB(),
        autoFlush: false,
        retry: { retries: 0 },
        ...rest,
      } as EventBufferOptions) as unknown as EventBuffer;
      close(buffer);
      const mirror = createMirror(buffer, {
        ...(retention !== undefined ? { retention } : {}),
        ...(confirmGracePeriod !== undefined ? { confirmGracePeriod } : {}),
        ...(lookBack !== undefined ? { lookBack } : {}),
      });
      return { buffer, mirror };
    };
    return { polar, transport, ...make(), another: make };
  };
}

/** Seeds `count` user events for `external_customer_id`, at `timestamp(i)` (epoch ms or wire string). */
export function seed(polar: MockPolarServer, count: number, timestamp: (i: number) => number | string, extra: Record<string, unknown> = {}): string[] {
  const events = Array.from({ length: count }, (_, i) => ({
    name: 'api_call',
    external_customer_id: 'user_42',
    timestamp: timestamp(i),
    metadata: { n: i },
    ...extra,
  }));
  return polar.addEvents(events).map((e) => e.id);
}
