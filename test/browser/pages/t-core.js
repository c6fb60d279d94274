// Shared by the test page, the dedicated worker and the service worker: a small driver over the
// bundled dist/ build, with a log of what the buffer did and of every ingest request it made.
import * as lib from '/bundle/polar-event-buffer.js';

export function createDriver(api) {
  const log = { fetches: [], changes: [], flushes: [], errors: [] };
  const realFetch = globalThis.fetch.bind(globalThis);
  // Every request of httpTransport goes through globalThis.fetch at call time: record the ingests.
  globalThis.fetch = async (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.includes('/v1/events/ingest')) return realFetch(input, init);
    // httpTransport sends an ingest body as UTF-8 bytes (a Uint8Array).
    const body = typeof init.body === 'string' ? init.body : init.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    const ids = body ? (JSON.parse(body).events ?? []).map((e) => e.external_id) : [];
    const entry = { keepalive: init.keepalive === true, bytes: new TextEncoder().encode(body).length, ids, start: Date.now(), end: null, status: null };
    log.fetches.push(entry);
    try {
      const response = await realFetch(input, init);
      entry.status = response.status;
      return response;
    } catch (error) {
      entry.status = 0;
      throw error;
    } finally {
      entry.end = Date.now();
    }
  };

  const T = {
    lib,
    api,
    log,
    buffer: null,
    open(options = {}) {
      const { transportOptions = {}, ...rest } = options;
      const buffer = lib.createEventBuffer({
        dbName: 'browser-suite',
        autoFlush: false,
        retry: { retries: 1, minTimeout: 50, maxTimeout: 200 },
        transport: lib.httpTransport({ baseUrl: api, timeout: 5000, ...transportOptions }),
        ...rest,
      });
      buffer.on('change', (e) => log.changes.push(e));
      buffer.on('flush', (r) => log.flushes.push(r));
      buffer.on('error', (e) => log.errors.push(String(e?.message)));
      T.buffer = buffer;
      return true;
    },
    /** Tracks `count` events at once (concurrent track() calls); resolves to their externalIds. */
    async track(count, prefix = 'e', metadata = {}) {
      const events = await Promise.all(
        Array.from({ length: count }, (_, i) => T.buffer.track({ name: `${prefix}.event`, externalCustomerId: 'customer-1', metadata: { i, ...metadata } })),
      );
      return events.map((e) => e.externalId);
    },
    async flush() {
      return T.buffer.flush();
    },
    async stats() {
      return T.buffer.stats();
    },
    async close() {
      await T.buffer.close();
      return true;
    },
  };
  return T;
}
