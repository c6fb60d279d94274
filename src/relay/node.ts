/**
 * `nodeListener`: the relay mounted in `node:http`, written against the shape of Node's request
 * and response so the relay entry imports nothing of Node (it runs on edge runtimes too).
 *
 * @module
 */
import type { Relay } from './types.js';

/** What the listener reads of Node's `IncomingMessage`. */
export interface NodeRequestLike extends AsyncIterable<Uint8Array | string> {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
}

/** What the listener writes to Node's `ServerResponse`. */
export interface NodeResponseLike {
  headersSent?: boolean;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  end(body?: Uint8Array | string): unknown;
  destroy?(): void;
}

/**
 * A `node:http` request listener that serves the relay.
 * @example
 * import { createServer } from 'node:http';
 * createServer(nodeListener(relay)).listen(8787);
 */
export function nodeListener(relay: Pick<Relay, 'fetch'>): (request: NodeRequestLike, response: NodeResponseLike) => void {
  return (req, res) => {
    void bridge(relay, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ detail: 'The relay failed.' }));
    });
  };
}

async function bridge(relay: Pick<Relay, 'fetch'>, req: NodeRequestLike, res: NodeResponseLike): Promise<void> {
  const method = req.method ?? 'GET';
  const host = typeof req.headers['host'] === 'string' ? req.headers['host'] : 'localhost';
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value === undefined || key.startsWith(':')) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(key, v);
  }
  const init: RequestInit & { duplex?: 'half' } = { method, headers };
  if (method !== 'GET' && method !== 'HEAD') {
    // The body streams in: the relay stops reading at its body limit instead of buffering it all.
    const chunks = req[Symbol.asyncIterator]();
    const encoder = new TextEncoder();
    init.body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(typeof next.value === 'string' ? encoder.encode(next.value) : new Uint8Array(next.value));
      },
      // Past the body limit the relay stops reading; Node discards the rest once the answer is sent.
    });
    init.duplex = 'half';
  }
  const response = await relay.fetch(new Request(`http://${host}${req.url ?? '/'}`, init));
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    out[key] = value;
  });
  const body = new Uint8Array(await response.arrayBuffer());
  out['content-length'] = String(body.byteLength);
  res.writeHead(response.status, out);
  res.end(body);
}
