import { TransportError, type ValidationDetail } from '../errors.js';
import type { EventCreateWire, IngestResult, ListResult, Transport } from './transport.js';

/**
 * Options of {@link httpTransport}.
 * @example
 * httpTransport({ baseUrl: 'https://api.polar.sh', headers: () => ({ Authorization: `Bearer ${token}` }), timeout: 5000 })
 */
export interface HttpTransportOptions {
  /**
   * Where Polar's events API lives: `https://api.polar.sh` from a server, or your own backend's
   * route that forwards to Polar from a browser (never put an organization token in a browser).
   * @example "https://api.polar.sh"
   */
  baseUrl: string;
  /**
   * Headers for every request, called once per request so a short-lived token is never stored.
   * @example () => ({ Authorization: `Bearer ${process.env.POLAR_ACCESS_TOKEN}` })
   * @default no extra headers (a browser sends its cookies to a same-origin `baseUrl`)
   */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Milliseconds before one request is aborted and counted as a network failure. @default 10000 */
  timeout?: number;
  /** Largest response body read, in bytes; a longer one is an error. @default 5_000_000 */
  maxResponseBytes?: number;
}

/**
 * A Transport over fetch that speaks Polar's events API: `POST /v1/events/ingest` and
 * `GET /v1/events/`.
 *
 * @example
 * // In a browser: your backend checks the user and forwards to Polar with the token.
 * const transport = httpTransport({ baseUrl: '/api/usage' });
 * @example
 * // On a server: straight to Polar.
 * const transport = httpTransport({
 *   baseUrl: 'https://api.polar.sh',
 *   headers: () => ({ Authorization: `Bearer ${process.env.POLAR_ACCESS_TOKEN}` }),
 * });
 */
export function httpTransport(options: HttpTransportOptions): Transport {
  if (!options || typeof options !== 'object') throw new TypeError('Expected httpTransport options `{ baseUrl }`.');
  if (typeof options.baseUrl !== 'string' || options.baseUrl.length === 0) {
    throw new TypeError('Expected `baseUrl` to be a non-empty string such as "https://api.polar.sh".');
  }
  if (options.headers !== undefined && typeof options.headers !== 'function') {
    throw new TypeError('Expected `headers` to be a function that returns the headers for each request.');
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') {
    throw new TypeError('Expected `fetch` to be a fetch function.');
  }
  const timeout = options.timeout ?? 10_000;
  if (typeof timeout !== 'number' || !(timeout > 0)) throw new TypeError('Expected `timeout` to be a positive number of milliseconds.');
  const maxResponseBytes = options.maxResponseBytes ?? 5_000_000;
  const base = options.baseUrl.replace(/\/+$/, '');

  async function request(method: 'GET' | 'POST', path: string, body: Uint8Array<ArrayBuffer> | undefined, signal: AbortSignal, keepalive: boolean) {
    const doFetch = options.fetch ?? (globalThis.fetch as typeof fetch | undefined);
    if (!doFetch) throw new TypeError('No fetch is available: pass `fetch` to httpTransport().');
    const url = base + path;
    const headers: Record<string, string> = { Accept: 'application/json', ...(await options.headers?.()) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    try {
      let response: Response;
      try {
        const init: RequestInit = { method, headers, signal: controller.signal, keepalive };
        if (body !== undefined) init.body = body;
        response = await doFetch(url, init);
      } catch (error) {
        const why = timedOut
          ? `no answer within ${timeout} ms (timeout)`
          : signal.aborted
            ? 'the request was aborted'
            : `network error (${(error as Error)?.message ?? String(error)})`;
        const then = method === 'GET' ? 'The page is read again (retry options); a later reconcile() resumes where this one stopped.' : 'The events stay queued and are sent again later.';
        throw new TransportError(`${method} ${url} failed: ${why}. ${then}`, {
          status: 0,
          url,
          cause: error,
        });
      }
      const serverDate = parseDate(response.headers.get('date'));
      let text: string;
      try {
        text = await readText(response, maxResponseBytes);
      } catch (error) {
        throw new TransportError(`${method} ${url}: could not read the answer (${(error as Error).message}).`, {
          status: timedOut ? 0 : response.ok ? 0 : response.status,
          url,
          serverDate,
          cause: error,
        });
      }
      if (!response.ok) {
        const json = safeJson(text);
        const retryAfter = parseRetryAfter(response.headers.get('retry-after'), serverDate);
        const detail = response.status === 422 ? parseDetail(json) : undefined;
        throw new TransportError(describeFailure(method, url, response.status, json, text, retryAfter), {
          status: response.status,
          url,
          retryAfter,
          detail,
          serverDate,
        });
      }
      const json = safeJson(text);
      if (json === undefined) {
        throw new TransportError(`${method} ${url} answered ${response.status} with a body that is not JSON: ${snippet(text)}.`, {
          status: response.status,
          url,
          serverDate,
        });
      }
      return { json, serverDate };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  return {
    async ingest(events: EventCreateWire[], { signal, keepalive = false }) {
      const { json, serverDate } = await request('POST', '/v1/events/ingest', ingestBody(events), signal, keepalive);
      const body = json as { inserted?: unknown; duplicates?: unknown };
      if (!isCount(body?.inserted) || (body.duplicates !== undefined && !isCount(body.duplicates))) {
        throw new TransportError(
          `POST ${base}/v1/events/ingest answered 2xx without the expected {"inserted": n, "duplicates": m}: ${snippet(JSON.stringify(json))}. ` +
            'Check that baseUrl points at Polar or a proxy that passes its answer through.',
          { status: 200, url: base + '/v1/events/ingest', serverDate },
        );
      }
      const result: IngestResult = { inserted: body.inserted as number, duplicates: (body.duplicates as number | undefined) ?? 0 };
      if (serverDate) result.serverDate = serverDate;
      return result;
    },
    async list(query: Record<string, string | number>, { signal }) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) params.append(k, String(v));
      const path = `/v1/events/?${params.toString()}`;
      const { json, serverDate } = await request('GET', path, undefined, signal, false);
      const body = json as ListResult;
      if (!body || !Array.isArray(body.items) || typeof body.pagination !== 'object' || body.pagination === null) {
        throw new TransportError(`GET ${base}${path} answered without {"items": [...], "pagination": {...}}: ${snippet(JSON.stringify(json))}.`, {
          status: 200,
          url: base + path,
          serverDate,
        });
      }
      const result: ListResult = { items: body.items, pagination: body.pagination };
      if (serverDate) result.serverDate = serverDate;
      return result;
    },
  };
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * `{"events":[...]}` as UTF-8 bytes, encoded one event at a time into one growing buffer. The body
 * of a batch of 1,000 events is some 330 KB; built as one string it went straight to V8's
 * large-object space and stayed there until a full GC, a good part of the heap a long drain piled
 * up (issue 6). Here each event's string dies young and the bytes live outside the JS heap.
 */
function ingestBody(events: readonly unknown[]): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  let out = new Uint8Array(16_384);
  let at = 0;
  const write = (text: string) => {
    const most = at + text.length * 3; // UTF-8 takes at most 3 bytes per UTF-16 unit
    if (most > out.length) {
      const grown = new Uint8Array(Math.max(most, out.length * 2));
      grown.set(out.subarray(0, at));
      out = grown;
    }
    at += encoder.encodeInto(text, out.subarray(at)).written;
  };
  write('{"events":[');
  events.forEach((event, i) => write(i === 0 ? JSON.stringify(event) : `,${JSON.stringify(event)}`));
  write(']}');
  return out.slice(0, at);
}

async function readText(response: Response, max: number): Promise<string> {
  const length = Number(response.headers.get('content-length'));
  if (Number.isFinite(length) && length > max) {
    await response.body?.cancel();
    throw new Error(`the body is ${length} bytes, more than the ${max} bytes allowed`);
  }
  if (!response.body) return response.text();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new Error(`the body is more than the ${max} bytes allowed`);
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t || '(empty)';
}

function parseDate(value: string | null): Date | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

/** `Retry-After` in ms: delta-seconds, or an HTTP date measured against the server's own Date. */
export function parseRetryAfter(value: string | null, serverDate?: Date, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, at - (serverDate ? serverDate.getTime() : now));
}

function parseDetail(json: unknown): ValidationDetail[] | undefined {
  const detail = (json as { detail?: unknown } | undefined)?.detail;
  if (!Array.isArray(detail)) return undefined;
  return detail
    .filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object')
    .map((d) => {
      const out: ValidationDetail = {
        msg: typeof d.msg === 'string' ? d.msg : JSON.stringify(d.msg ?? d),
        loc: Array.isArray(d.loc) ? (d.loc.filter((x) => typeof x === 'string' || typeof x === 'number') as (string | number)[]) : [],
      };
      if (typeof d.type === 'string') out.type = d.type;
      if ('input' in d) out.input = d.input;
      return out;
    });
}

function describeFailure(method: string, url: string, status: number, json: unknown, text: string, retryAfter: number | undefined): string {
  const detail = (json as { detail?: unknown } | undefined)?.detail;
  const said = typeof detail === 'string' ? detail : json === undefined ? snippet(text) : snippet(JSON.stringify(json));
  const head = `${method} ${url} answered ${status}: ${said}.`;
  if (status === 401 || status === 403) {
    return `${head} The request was not authorized: check the token that headers() returns (or your proxy's session). Events stay queued.`;
  }
  if (status === 413) return `${head} The body was too large; the batch is split and sent again.`;
  if (status === 422) return `${head} The server refused some events; they are dead-lettered with its reason and the rest are sent again.`;
  if (status === 429 || status >= 500) {
    const when = retryAfter !== undefined ? ` after ${Math.round(retryAfter / 1000)} s (Retry-After)` : ' with backoff';
    // GET is reconcile()'s read of the server's events: nothing of ours waits on it.
    if (method === 'GET') return `${head} The page is read again${when}; a later reconcile() resumes where this one stopped.`;
    return `${head} The events stay queued and are retried${when}.`;
  }
  return head;
}
