/**
 * A small typed emitter: `on()` returns the unsubscribe function; a handler that throws never
 * breaks the buffer (its error is reported on "error", or swallowed if it came from an "error"
 * handler itself).
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #handlers = new Map<keyof Events, Set<(payload: never) => void>>();

  on<K extends keyof Events>(name: K, handler: (payload: Events[K]) => void): () => void {
    let set = this.#handlers.get(name);
    if (!set) this.#handlers.set(name, (set = new Set()));
    const h = handler as (payload: never) => void;
    set.add(h);
    return () => {
      set!.delete(h);
    };
  }

  emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    const set = this.#handlers.get(name);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as (p: Events[K]) => void)(payload);
      } catch (error) {
        if (name !== 'error') this.emit('error' as K, error as Events[K]);
      }
    }
  }

  clear(): void {
    this.#handlers.clear();
  }
}
