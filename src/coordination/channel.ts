/**
 * Tells the other tabs and workers on the same database that the queue or the mirror changed, so
 * `"change"` fires everywhere. A no-op where BroadcastChannel is missing.
 */
interface ChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
}

export class ChangeChannel {
  #channel: ChannelLike | undefined;

  constructor(dbName: string, onMessage: (event: { reason: 'track' | 'flush' | 'deadletter' | 'reconcile' | 'retry' | 'purge' | 'clear' }) => void) {
    const BC = (globalThis as { BroadcastChannel?: new (name: string) => ChannelLike }).BroadcastChannel;
    if (typeof BC !== 'function') return;
    try {
      this.#channel = new BC(`polar-event-buffer:${dbName}`);
      // Node's BroadcastChannel would keep the process alive.
      (this.#channel as { unref?: () => void }).unref?.();
      this.#channel.onmessage = (event) => {
        const data = event.data as { reason?: unknown } | null;
        if (data && typeof data.reason === 'string') onMessage({ reason: data.reason as never });
      };
    } catch {
      this.#channel = undefined;
    }
  }

  post(message: { reason: string }): void {
    try {
      this.#channel?.postMessage(message);
    } catch {
      // A closed channel: nobody to tell.
    }
  }

  close(): void {
    this.#channel?.close();
    this.#channel = undefined;
  }
}
