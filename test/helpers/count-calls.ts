import { afterEach } from 'vitest';

/**
 * Counts the calls of a prototype method (e.g. `IDBObjectStore.prototype.get`) while it is
 * installed; each call goes through to the original. Restored by `restore()` or after the test.
 */
export function countCalls<P extends object, K extends keyof P>(proto: P, method: K, onCall?: (args: unknown[]) => void) {
  const original = proto[method] as unknown as (...args: unknown[]) => unknown;
  const counter = {
    calls: 0,
    restore() {
      proto[method] = original as P[K];
    },
  };
  proto[method] = function (this: unknown, ...args: unknown[]) {
    counter.calls++;
    onCall?.(args);
    return original.apply(this, args);
  } as P[K];
  installed.push(counter);
  return counter;
}

const installed: { restore(): void }[] = [];
afterEach(() => {
  for (const counter of installed.splice(0).reverse()) counter.restore();
});
