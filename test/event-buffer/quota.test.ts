import { IDBObjectStore as FakeObjectStore } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventBuffer } from '../../src/event-buffer.js';
import { createMirror } from '../../src/mirror/index.js';
import { StorageError } from '../../src/errors.js';
import { httpTransport } from '../../src/transport/http.js';
import type { EventBuffer } from '../../src/types.js';
import { autoClose, freshIndexedDB } from '../helpers/fresh-db.js';
import { useMockPolar } from '../helpers/mock-server.js';

const startPolar = useMockPolar();
const closeLater = autoClose();
const originalPut = FakeObjectStore.prototype.put;
afterEach(() => {
  FakeObjectStore.prototype.put = originalPut;
});

/** The next put into the `events` store fails like a full disk; later ones succeed. */
function fullDiskOnce(): void {
  let failed = false;
  FakeObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
    if (!failed && this.name === 'events') {
      failed = true;
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    }
    return originalPut.apply(this, args);
  } as IDBObjectStore['put'];
}

describe('a full disk', () => {
  it('prunes the older half of the mirror, not a tracked event, and stores the new event', async () => {
    const server = await startPolar();
    const now = Date.now();
    server.addEvents(
      Array.from({ length: 40 }, (_, i) => ({
        name: 'seen_elsewhere',
        external_customer_id: 'user_1',
        timestamp: new Date(now - 60_000 + i * 100).toISOString(),
        metadata: { i },
      })),
    );
    const buffer = createEventBuffer({
      transport: httpTransport({ baseUrl: server.url }),
      indexedDB: freshIndexedDB(),
      autoFlush: false,
    }) as unknown as EventBuffer;
    closeLater(buffer);
    const errors: unknown[] = [];
    buffer.on('error', (e) => errors.push(e));
    const mirror = createMirror(buffer);
    await buffer.track({ name: 'waiting', externalCustomerId: 'user_1' } as never);
    await mirror.reconcile({ externalCustomerId: 'user_1' });
    expect((await buffer.stats()).mirrored).toBe(40);

    fullDiskOnce();
    const event = await buffer.track({ name: 'api_call', externalCustomerId: 'user_1', metadata: { tokens: 3 } } as never);

    expect(event.status).toBe('pending');
    const stats = await buffer.stats();
    expect(stats.pending).toBe(2);
    expect(stats.mirrored).toBe(20);
    const remaining = await mirror.query({ externalCustomerId: 'user_1', status: 'confirmed' });
    expect(Math.min(...remaining.map((e) => (e.metadata as { i: number }).i))).toBe(20);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(StorageError);
    expect(String((errors[0] as Error).message)).toMatch(/quota.*20 mirrored events removed/);
  });

  it('prunes only through an open mirror: with the mirror closed, the write is refused and the mirror kept', async () => {
    const server = await startPolar();
    server.addEvents([{ name: 'seen_elsewhere', external_customer_id: 'user_1', timestamp: new Date(Date.now() - 60_000).toISOString() }]);
    const buffer = createEventBuffer({
      transport: httpTransport({ baseUrl: server.url }),
      indexedDB: freshIndexedDB(),
      autoFlush: false,
    }) as unknown as EventBuffer;
    closeLater(buffer);
    const mirror = createMirror(buffer);
    await mirror.reconcile();
    await mirror.close();
    fullDiskOnce();
    await expect(buffer.track({ name: 'api_call', externalCustomerId: 'user_1' } as never)).rejects.toMatchObject({ code: 'storage' });
    expect(await buffer.stats()).toMatchObject({ pending: 0, mirrored: 1 });
  });

  it('refuses the write with a StorageError when there is no mirror to prune', async () => {
    const server = await startPolar();
    const buffer = createEventBuffer({
      transport: httpTransport({ baseUrl: server.url }),
      indexedDB: freshIndexedDB(),
      autoFlush: false,
    }) as unknown as EventBuffer;
    closeLater(buffer);
    fullDiskOnce();
    await expect(buffer.track({ name: 'api_call', externalCustomerId: 'user_1' } as never)).rejects.toMatchObject({
      code: 'storage',
      message: expect.stringMatching(/quota/),
    });
    expect((await buffer.stats()).pending).toBe(0);
  });
});
