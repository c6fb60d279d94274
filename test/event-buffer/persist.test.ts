import { afterEach, describe, expect, it, vi } from 'vitest';
import { freshIndexedDB } from '../helpers/fresh-db.js';
import { bufferFactory, input } from './support.js';

const make = bufferFactory();
const transport = { ingest: async () => ({ inserted: 0, duplicates: 0 }) };

/** A browser-like navigator.storage for this test (Node has none). */
function fakeStorage(granted: boolean) {
  const storage = { persist: vi.fn(async () => granted), estimate: vi.fn(async () => ({ usage: 12_345, quota: 987_654_321 })) };
  vi.stubGlobal('navigator', { storage });
  return storage;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('persist', () => {
  it('asks the browser once to keep the storage and reports its answer, usage and quota in stats()', async () => {
    const storage = fakeStorage(true);
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport, persist: true });
    await buffer.track(input(0));
    expect(await buffer.stats()).toMatchObject({ pending: 1, persisted: true, usage: 12_345, quota: 987_654_321 });
    await buffer.stats();
    expect(storage.persist).toHaveBeenCalledTimes(1);
  });

  it('reports a refusal as persisted: false', async () => {
    fakeStorage(false);
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport, persist: true });
    expect((await buffer.stats()).persisted).toBe(false);
  });

  it('asks nothing without persist: true, and stats() then has no persisted field', async () => {
    const storage = fakeStorage(true);
    const buffer = make(undefined, { indexedDB: freshIndexedDB(), transport });
    const stats = await buffer.stats();
    expect(storage.persist).not.toHaveBeenCalled();
    expect('persisted' in stats).toBe(false);
  });
});
