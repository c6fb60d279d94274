import { TransportError, type ValidationDetail } from '../errors.js';
import { argError } from '../check.js';
import type { EventCreateWire, IngestResult, ListResult, Transport } from './transport.js';

/**
 * Options of {@link httpTransport}.
 * @example
 * httpTransport({ baseUrl: 'https://api.polar.sh', headers: () => ({ Authorization: `Bearer ${token}` }), timeout: 5000 })
 */
export interface HttpTransportOptions {
  /**
   * Where Polar's events API lives: `https://api.polar.sh` from a server, or your backend's route
   * that forwards to Polar from a browser (never put an organization token in a browser).
   */
  baseUrl: string;
  /** Headers for every request, called per request so a short-lived token is never stored. @default none */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** ms before one request is aborted and counted as a network failure. @default 10000 */
  timeout?: number;
  /** Largest response body read, in bytes. @default 5000000 */
  maxResponseBytes?: number;
}

/**
 * A Transport over fetch for Polar's events API: `POST /v1/events/ingest` and `GET /v1/events/`.
 * @example
 * const transport = httpTransport({ baseUrl: '/api/usage' }); // a browser: your backend forwards to Polar
 */
export function httpTransport(options: HttpTransportOptions): Transport {
  const { baseUrl, headers, timeout = 10_000, maxResponseBytes = 5_000_000 } = options ?? ({} as HttpTransportOptions);
  if (typeof baseUrl !== 'string' || !baseUrl) throw argError('baseUrl', 'a URL such as "https://api.polar.sh"', baseUrl);
  if (headers !== undefined && typeof headers !== 'function') throw argError('headers', 'a function returning headers', headers);
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw argError('fetch', 'a fetch function', options.fetch);
  if (typeof timeout !== 'number' || !(timeout > 0)) throw argError('timeout', 'a positive number of ms', timeout);
  const base = baseUrl.replace(/\/+$/, '');

  async function request(
    method: string,
    path: string,
    signal: AbortSignal,
    body?: Uint8Array<ArrayBuffer>,
    keepalive = false,
  ): Promise<{ json: any; serverDate: Date | undefined }> {
    const url = base + path;
    const fail = (message: string, status = 0, extra: object = {}): never => {
      throw new TransportError(`${method} ${url}: ${message}`, { status, url, ...extra });
    };
    const doFetch = options.fetch ?? globalThis.fetch;
    if (!doFetch) fail('no fetch available');
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal.addEventListener('abort', abort);
    if (signal.aborted) abort();
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), abort()), timeout);
    try {
      let response: Response | undefined;
      try {
        const h: Record<string, string> = { Accept: 'application/json', ...(await headers?.()) };
        if (body) h['Content-Type'] = 'application/json';
        response = await doFetch(url, { method, headers: h, signal: controller.signal, keepalive, ...(body ? { body } : {}) });
      } catch (error) {
        fail(timedOut ? `timeout after ${timeout} ms` : signal.aborted ? 'aborted' : `network error (${(error as Error)?.message ?? error})`, 0, {
          cause: error,
        });
      }
      const date = Date.parse(response!.headers.get('date') ?? '');
      const serverDate = Number.isFinite(date) ? new Date(date) : undefined;
      let text = '';
      try {
        text = await readText(response!, maxResponseBytes);
      } catch (error) {
        fail(`unreadable answer (${(error as Error).message})`, response!.ok || timedOut ? 0 : response!.status, { serverDate, cause: error });
      }
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: said below
      }
      if (!response!.ok) {
        const status = response!.status;
        const said = typeof json?.detail === 'string' ? json.detail : (json === undefined ? text : JSON.stringify(json)).slice(0, 200) || '(empty)';
        fail(`${status} ${said}`, status, {
          serverDate,
          retryAfter: parseRetryAfter(response!.headers.get('retry-after'), serverDate),
          detail: status === 422 ? parseDetail(json) : undefined,
        });
      }
      if (json === undefined) fail(`${response!.status} with a body that is not JSON`, response!.status, { serverDate });
      return { json, serverDate };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  const withDate = <T extends object>(value: T, serverDate: Date | undefined): T => (serverDate ? { ...value, serverDate } : value);

  return {
    async ingest(events: EventCreateWire[], { signal, keepalive }) {
      const { json, serverDate } = await request('POST', '/v1/events/ingest', signal, ingestBody(events), keepalive);
      if (!isCount(json?.inserted) || !(json.duplicates === undefined || isCount(json.duplicates))) {
        throw new TransportError(`POST ${base}/v1/events/ingest: 2xx without {"inserted", "duplicates"}`, { status: 200, serverDate });
      }
      return withDate<IngestResult>({ inserted: json.inserted, duplicates: json.duplicates ?? 0 }, serverDate);
    },
    async list(query, { signal }) {
      const path = `/v1/events/?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}`;
      const { json, serverDate } = await request('GET', path, signal);
      if (!Array.isArray(json?.items) || typeof json.pagination !== 'object' || !json.pagination) {
        throw new TransportError(`GET ${base}${path}: 2xx without {"items", "pagination"}`, { status: 200, serverDate });
      }
      return withDate<ListResult>({ items: json.items, pagination: json.pagination }, serverDate);
    },
  };
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/**
 * `{"events":[...]}` as UTF-8 bytes, encoded one event at a time into one growing buffer: a batch
 * body built as one ~330 KB string sat in V8's large-object space until a full GC.
 */
function ingestBody(events: readonly unknown[]): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  let out = new Uint8Array(16_384);
  let at = 0;
  const write = (text: string) => {
    if (at + text.length * 3 > out.length) {
      const grown = new Uint8Array(Math.max(at + text.length * 3, out.length * 2));
      grown.set(out.subarray(0, at));
      out = grown;
    }
    at += encoder.encodeInto(text, out.subarray(at)).written;
  };
  write('{"events":[');
  events.forEach((event, i) => void write((i ? ',' : '') + JSON.stringify(event)));
  write(']}');
  return out.slice(0, at);
}

async function readText(response: Response, max: number): Promise<string> {
  if (Number(response.headers.get('content-length')) > max) {
    await response.body?.cancel();
    throw new Error(`over ${max} bytes`);
  }
  if (!response.body) return response.text();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    if ((size += chunk.value.byteLength) > max) {
      await reader.cancel();
      throw new Error(`over ${max} bytes`);
    }
    text += decoder.decode(chunk.value, { stream: true });
  }
  return text + decoder.decode();
}

/** `Retry-After` in ms: delta-seconds, or an HTTP date measured against the server's own Date. */
export function parseRetryAfter(value: string | null, serverDate?: Date, now: number = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - (serverDate?.getTime() ?? now)) : undefined;
}

function parseDetail(json: any): ValidationDetail[] | undefined {
  if (!Array.isArray(json?.detail)) return undefined;
  return json.detail
    .filter((d: unknown) => typeof d === 'object' && d !== null)
    .map((d: Record<string, unknown>) => ({
      ...d,
      msg: typeof d.msg === 'string' ? d.msg : JSON.stringify(d.msg ?? d),
      loc: Array.isArray(d.loc) ? d.loc.filter((x) => typeof x === 'string' || typeof x === 'number') : [],
    }));
}
