// The names the docs' snippets take for granted: an app's own values and functions.
import type { EventBuffer } from '../../src/index.js';
import type { Mirror } from '../../src/mirror/index.js';
import type { Relay } from '../../src/relay/index.js';

declare global {
  const buffer: EventBuffer;
  const mirror: Mirror;
  const relay: Relay;
  const meter: Parameters<typeof import('../../src/meters/index.js').meterUsage>[1];
  const startOfMonth: Date;
  const currentUser: { id: string };
  function userFromSession(cookie: string | null): Promise<{ id: string } | null>;
  function sessionUser(request: Request): Promise<{ id: string } | null>;
  function reportToSentry(value: unknown): void;
  function render(value: unknown): void;
  function showProblems(failures: readonly { path: readonly string[]; message: string }[]): void;
  function warnUser(message: string): void;
  const meters: { id: string }[];
}
