/**
 * Suite 5: security. Tokens from headers() never reach IndexedDB (every store is scanned after a
 * run with flushes, a 401, dead letters and a reconcile); clear({ externalCustomerId }) removes a
 * signed-out user's waiting events, dead letters and mirror; the mock server refuses requests
 * without the configured token.
 */
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, test, vi } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { createMirror } from '../../src/mirror/index.js';
import { httpTransport } from '../../src/transport/http.js';
import type { EventBuffer } from '../../src/types.js';
import { autoClose } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const startServer = useMockPolar();
const closeLater = autoClose();
const DB = 'security';
/**
 * An event naming an organization is refused (422) under an organization token: the dead letter of
 * these runs. (Polar accepts an event whose parent it has not seen today, and hides it.)
 */
const OTHER_ORG = '9b4f2c7e-1d0a-4c57-8f6e-2b1f0c9d3a11';

/** Every record of every object store, as JSON text, read with raw IndexedDB. */
function dumpDatabase(factory: IDBFactory): Promise<Record<string, string[]>> {
  return new Promise((resolve, reject) => {
    const open = factory.open(DB);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const names = Array.from(db.objectStoreNames);
      const tx = db.transaction(names, 'readonly');
      const out: Record<string, string[]> = {};
      for (const name of names) {
        const req = tx.objectStore(name).getAll();
        req.onsuccess = () => (out[name] = (req.result as unknown[]).map((r) => JSON.stringify(r)));
      }
      tx.oncomplete = () => {
        db.close();
        resolve(out);
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

async function makeBuffer(url: string, token: () => string | undefined, factory = new IDBFactory()) {
  const buffer = createEventBuffer({
    transport: httpTransport({
      baseUrl: url,
      headers: () => {
        const t = token();
        return t === undefined ? {} : { Authorization: `Bearer ${t}` };
      },
    }),
    indexedDB: factory,
    dbName: DB,
    autoFlush: false,
    retry: { retries: 0, minTimeout: 1, maxTimeout: 5 },
  }) as unknown as EventBuffer;
  closeLater(buffer);
  return { buffer, mirror: createMirror(buffer), factory };
}

describe('security', () => {
  test('the token from headers() is never written to IndexedDB, in any store, after flushes, a 401, a dead letter and a reconcile', async () => {
    const token = `polar_oat_${Math.random().toString(36).slice(2)}${Date.now()}`;
    const server = await startServer({ token });
    let current = token;
    const { buffer, mirror, factory } = await makeBuffer(server.url, () => current);
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    mirror.on('error', (e) => errors.push(e));
    await buffer.trackMany([
      { name: 'api_call', externalCustomerId: 'cust_a', metadata: { tokens: 3 } },
      { name: 'api_call', externalCustomerId: 'cust_b', organizationId: OTHER_ORG }, // the server refuses: dead letter
    ] as never);
    current = `${token}-expired`;
    expect((await buffer.flush()).stoppedBy).toBe('unauthorized');
    current = token;
    await buffer.flush();
    await buffer.track({ name: 'api_call', externalCustomerId: 'cust_a' } as never);
    await buffer.flush();
    await mirror.reconcile();
    expect(errors.length).toBeGreaterThan(0);
    const stats = await buffer.stats();
    expect(stats.dead).toBe(1);
    expect(stats.mirrored).toBe(2);
    const dump = await dumpDatabase(factory);
    expect(Object.keys(dump).sort()).toEqual(['events', 'meta', 'mirror']);
    const all = Object.values(dump).flat();
    expect(all.length).toBeGreaterThan(4);
    expect(all.filter((text) => text.includes(token) || /bearer/i.test(text))).toEqual([]);
  });

  test('the library writes nothing to the console (no debug log), so no metadata value can leak there, through flushes, a 401, a dead letter and a reconcile', async () => {
    const spies = (['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
    try {
      const token = 'polar_oat_console_check';
      const server = await startServer({ token });
      let current = 'wrong';
      const { buffer, mirror } = await makeBuffer(server.url, () => current);
      await buffer.trackMany([
        { name: 'api_call', externalCustomerId: 'cust_a', metadata: { secret_note: 'do-not-print-me' } },
        { name: 'api_call', externalCustomerId: 'cust_b', organizationId: OTHER_ORG },
      ] as never);
      expect((await buffer.flush()).stoppedBy).toBe('unauthorized');
      current = token;
      const report = await buffer.flush();
      expect(report.sent + report.deadLettered).toBe(2);
      await mirror.reconcile();
      await mirror.query({ externalCustomerId: 'cust_a' });
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  test("clear({ externalCustomerId }) removes that customer's waiting events, dead letters and mirror, and nothing of anyone else", async () => {
    const server = await startServer();
    const { buffer, mirror, factory } = await makeBuffer(server.url, () => undefined);
    await buffer.trackMany([
      { name: 'api_call', externalCustomerId: 'leaving_user', metadata: { n: 1 } },
      { name: 'api_call', externalCustomerId: 'staying_user', metadata: { n: 2 } },
      { name: 'api_call', externalCustomerId: 'leaving_user', organizationId: OTHER_ORG },
    ] as never);
    await buffer.flush();
    await mirror.reconcile();
    await buffer.trackMany([
      { name: 'api_call', externalCustomerId: 'leaving_user', metadata: { n: 3 } },
      { name: 'api_call', externalCustomerId: 'staying_user', metadata: { n: 4 } },
    ] as never);
    expect((await buffer.stats()).dead).toBe(1);
    const before = await dumpDatabase(factory);
    expect([...before['events']!, ...before['mirror']!].filter((t) => t.includes('leaving_user')).length).toBe(4); // 3 events (confirmed, dead, pending) + 1 mirrored

    await buffer.clear({ externalCustomerId: 'leaving_user' });

    const after = await dumpDatabase(factory);
    expect(
      Object.values(after)
        .flat()
        .filter((t) => t.includes('leaving_user')),
    ).toEqual([]);
    expect(after['events']!.filter((t) => t.includes('staying_user')).length).toBe(2);
    expect(after['mirror']!.filter((t) => t.includes('staying_user')).length).toBe(1);
    const stats = await buffer.stats();
    expect({ pending: stats.pending, dead: stats.dead }).toEqual({ pending: 1, dead: 0 });
  });

  test('the mock server refuses ingest and list requests without the configured token, or with another one, and stores nothing', async () => {
    const server = await startServer({ token: 'the-right-token' });
    const body = JSON.stringify({ events: [{ name: 'api_call', external_customer_id: 'c', external_id: 'sec-1' }] });
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/v1/events/ingest`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
    expect((await post({})).status).toBe(401);
    expect((await post({ Authorization: 'Bearer the-wrong-token' })).status).toBe(401);
    expect((await post({ Authorization: 'the-right-token' })).status).toBe(401);
    expect((await fetch(`${server.url}/v1/events/`)).status).toBe(401);
    expect(server.events.length).toBe(0);
    expect((await post({ Authorization: 'Bearer the-right-token' })).status).toBe(200);
    expect(server.events.length).toBe(1);
  });

  test('a buffer whose headers() gives no token keeps its events waiting on 401: nothing is sent, lost or dead-lettered', async () => {
    const server = await startServer({ token: 'the-right-token' });
    const { buffer } = await makeBuffer(server.url, () => undefined);
    await buffer.trackMany([1, 2, 3].map((n) => ({ name: 'api_call', externalCustomerId: 'c', metadata: { n } })) as never);
    const report = await buffer.flush();
    expect(report.stoppedBy).toBe('unauthorized');
    expect(server.ingestRequests().map((r) => r.status)).toEqual([401]);
    const stats = await buffer.stats();
    expect({ pending: stats.pending, dead: stats.dead, sent: stats.sent }).toEqual({ pending: 3, dead: 0, sent: 0 });
  });
});
