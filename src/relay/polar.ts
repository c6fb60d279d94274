/**
 * The relay's one door to Polar: every request spends a token of the budget, carries the
 * organization token, and is counted and reported (never with the token).
 *
 * @module
 */
import type { TokenBucket } from './limits.js';
import type { PolarCall, RelayClock, RelayEvent } from './types.js';

/** Polar's answer, read in full; status 0 when there was none. */
export interface PolarAnswer {
  status: number;
  text: string;
  contentType: string | null;
  /** Retry-After in ms, when Polar sent one. */
  retryAfterMs: number | undefined;
}

export interface PolarCounters {
  requests: number;
  ingestRequests: number;
  reads: number;
  events: number;
  rateLimited: number;
  recent: number[];
}

/** `Retry-After` (seconds or an HTTP date) in ms. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export interface PolarClient {
  call(call: PolarCall, method: 'GET' | 'POST', path: string, body?: string, counts?: { events: number; devices: number }): Promise<PolarAnswer>;
  counters: PolarCounters;
  perMinute(): number;
}

export function polarClient(o: {
  baseUrl: string;
  accessToken: string;
  fetch: typeof fetch;
  clock: RelayClock;
  bucket: TokenBucket;
  emit: (event: RelayEvent) => void;
}): PolarClient {
  const counters: PolarCounters = { requests: 0, ingestRequests: 0, reads: 0, events: 0, rateLimited: 0, recent: [] };
  const prune = (now: number) => {
    let drop = 0;
    while (drop < counters.recent.length && counters.recent[drop]! <= now - 60_000) drop++;
    if (drop) counters.recent.splice(0, drop);
  };
  return {
    counters,
    perMinute() {
      prune(o.clock.now());
      return counters.recent.length;
    },
    async call(call, method, path, body, counts) {
      const started = o.clock.now();
      counters.requests++;
      counters.recent.push(started);
      prune(started);
      if (call === 'ingest') {
        counters.ingestRequests++;
        counters.events += counts?.events ?? 0;
      } else counters.reads++;
      const headers: Record<string, string> = { Authorization: `Bearer ${o.accessToken}`, Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const attempt = async (): Promise<PolarAnswer> => {
        const response = await o.fetch(`${o.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
        return {
          status: response.status,
          text: await response.text(),
          contentType: response.headers.get('content-type'),
          retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), o.clock.now()),
        };
      };
      let answer: PolarAnswer;
      try {
        answer = await attempt();
      } catch {
        // Once more at once: a kept-alive connection the server had just closed fails before it
        // is used. Safe for every call: an ingest resent is deduped by its scoped external_ids.
        counters.requests++;
        counters.recent.push(o.clock.now());
        if (call === 'ingest') counters.ingestRequests++;
        else counters.reads++;
        try {
          answer = await attempt();
        } catch (error) {
          o.emit({ type: 'error', message: `Polar could not be reached (${method} ${path.split('?')[0]})`, cause: error });
          answer = { status: 0, text: '', contentType: null, retryAfterMs: undefined };
        }
      }
      const now = o.clock.now();
      if (answer.status === 429) counters.rateLimited++;
      // Polar's limiter counts per token: whatever it says applies to every call of this relay.
      if ((answer.status === 429 || answer.status === 503) && answer.retryAfterMs !== undefined) o.bucket.pause(now + answer.retryAfterMs);
      else if (answer.status === 429) o.bucket.pause(now + 1000);
      if (answer.status === 401 || answer.status === 403) {
        o.emit({ type: 'error', message: `Polar answered ${answer.status}: the access token is missing a scope or is no longer valid` });
      }
      o.emit({ type: 'polar', call, status: answer.status, ms: now - started, ...(counts ?? {}) });
      return answer;
    },
  };
}
