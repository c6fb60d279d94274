import { IDBFactory } from 'fake-indexeddb';
import { afterEach } from 'vitest';

/**
 * A fresh fake-indexeddb factory per test: each test gets its own, so no test sees another's
 * database, and nothing needs deleting (the factory is garbage once the test ends).
 */
export function freshIndexedDB(): IDBFactory {
  return new IDBFactory();
}

let counter = 0;
/** A unique database name (for tests that share one factory between buffers). */
export function uniqueDbName(prefix = 'test'): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Closes what a test opened, even when it failed. */
export function autoClose(): (item: { close(): unknown }) => void {
  const items: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const item of items.splice(0).reverse()) await item.close();
  });
  return (item) => {
    items.push(item);
  };
}
