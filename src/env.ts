/**
 * The host's globals, read only through here and only when used (never at import time), so one
 * setter replaces them in tests instead of patching `globalThis` (TanStack's onlineManager style).
 */
export interface Environment {
  /** Where `online`, `offline`, `pagehide` and `pageshow` fire: the window or a worker's global scope. */
  window?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> | undefined;
  /** Where `visibilitychange` fires. */
  document?: (Pick<EventTarget, 'addEventListener' | 'removeEventListener'> & { visibilityState?: string }) | undefined;
  navigator?:
    | {
        onLine?: boolean;
        locks?: unknown;
        storage?: { persist?(): Promise<boolean>; estimate?(): Promise<{ usage?: number; quota?: number }> };
      }
    | undefined;
  BroadcastChannel?: (new (name: string) => unknown) | undefined;
}

let custom: Environment | undefined;

/** The environment in use: the one set by `setEnvironment`, else the host's globals. */
export function env(): Environment {
  if (custom) return custom;
  const g = globalThis as Environment & { addEventListener?: unknown };
  return {
    window: typeof g.addEventListener === 'function' ? (g as Environment['window']) : undefined,
    document: typeof g.document?.addEventListener === 'function' ? g.document : undefined,
    navigator: g.navigator,
    BroadcastChannel: g.BroadcastChannel,
  };
}

/** Replaces the environment (tests, unusual hosts); `undefined` goes back to the host's globals. */
export function setEnvironment(environment: Environment | undefined): void {
  custom = environment;
}

/** Adds a listener; returns its removal. */
export function listen(target: Environment['window'], type: string, listener: () => void, capture = false): () => void {
  target?.addEventListener(type, listener, capture);
  return () => target?.removeEventListener(type, listener, capture);
}
