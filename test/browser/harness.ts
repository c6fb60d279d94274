/**
 * The browser suite's harness: serves the BUILT library (dist/index.js, bundled with its three
 * dependencies by esbuild into one ES module, because import maps do not reach workers and service
 * workers), the test pages and the browser example from 127.0.0.1, starts the mock Polar server
 * in-process with CORS on, and drives this run's engine (see engines.ts) through one small surface.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, it } from 'vitest';
import { type MockPolarOptions, type MockPolarServer, startMockPolar } from '../../dist/mock-server.js';
import { CANNOT, type Capability, ENGINE, type Engine, launchEngine, type Session, type Tab } from './engines.js';

export { ENGINE, type Engine, type Session, type Tab } from './engines.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
};

/** URL prefix → folder under the repository root. Only these are served. */
const MOUNTS: [string, string][] = [
  ['/pages/', 'test/browser/pages'],
  ['/examples/browser/', 'examples/browser'],
  ['/dist/', 'dist'],
  ['/node_modules/idb/', 'node_modules/idb'],
  ['/node_modules/superstruct/', 'node_modules/superstruct'],
  ['/node_modules/p-retry/', 'node_modules/p-retry'],
  ['/node_modules/is-network-error/', 'node_modules/is-network-error'],
];

let bundleCache: { mtime: number; code: string } | undefined;

/**
 * dist/index.js and dist/mirror.js (one copy of their shared chunks, so a mirror recognises the
 * buffer) with idb, superstruct and p-retry inlined: what a user's bundler would produce.
 */
export async function bundleDist(): Promise<string> {
  const entry = join(ROOT, 'dist/index.js');
  if (!existsSync(entry)) throw new Error('dist/index.js is missing: run `npm run build` before the browser suite.');
  const mtime = statSync(entry).mtimeMs;
  if (bundleCache?.mtime === mtime) return bundleCache.code;
  const result = await build({
    stdin: { contents: "export * from './dist/index.js'; export { createMirror } from './dist/mirror.js';", resolveDir: ROOT },
    bundle: true,
    format: 'esm',
    write: false,
    platform: 'browser',
    logLevel: 'silent',
  });
  bundleCache = { mtime, code: result.outputFiles[0]!.text };
  return bundleCache.code;
}

let appCache: Promise<string> | undefined;

/** The React test page's app (pages/meters-app.js) with React and the built dist/ entries in one module. */
function bundleMetersApp(): Promise<string> {
  appCache ??= build({
    entryPoints: [join(ROOT, 'test/browser/pages/meters-app.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  }).then((result) => result.outputFiles[0]!.text);
  return appCache;
}

/**
 * A static server on 127.0.0.1: the bundle at /bundle/polar-event-buffer.js, the React test app at
 * /bundle/meters-app.js, and the mounts above.
 */
export async function startStaticServer(): Promise<{ url: string; close(): Promise<void> }> {
  const bundle = await bundleDist();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
    if (path === '/bundle/polar-event-buffer.js') {
      res.writeHead(200, { ...headers, 'Content-Type': TYPES['.js']! });
      res.end(bundle);
      return;
    }
    if (path === '/bundle/meters-app.js') {
      bundleMetersApp().then(
        (app) => (res.writeHead(200, { ...headers, 'Content-Type': TYPES['.js']! }), res.end(app)),
        (error) => (res.writeHead(500), res.end(String(error))),
      );
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    for (const [prefix, folder] of MOUNTS) {
      if (!path.startsWith(prefix)) continue;
      const base = join(ROOT, folder);
      let file = normalize(join(base, path.slice(prefix.length)));
      if (!file.startsWith(base + sep) && file !== base) break;
      if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
      if (!existsSync(file)) break;
      // A service worker served from /pages/ may control all of /.
      if (path.endsWith('sw.js')) headers['Service-Worker-Allowed'] = '/';
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end(`not found: ${path}`);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

/** The file's engine and, per test, the harness and session that test opened (closed after it). */
export interface Rig {
  engine: Engine;
  h: Harness;
  session: Session | undefined;
}

/** One engine per test file; each test's session and harness are closed after it, even on failure. */
export function useEngine(): Rig {
  const rig = { session: undefined } as Rig;
  beforeAll(async () => {
    rig.engine = await launchEngine();
  });
  afterAll(async () => {
    await rig.engine?.close();
  });
  afterEach(async () => {
    await rig.session?.close();
    rig.session = undefined;
    await (rig.h as Harness | undefined)?.close();
  });
  return rig;
}

/**
 * `it` in this run's engine, unless the test needs what the engine cannot do under automation:
 * then it is registered skipped, its name saying which engine and why (the runner lists these).
 */
export function itNeeds(needs: Capability[], name: string, fn: () => Promise<void>, timeout?: number): void {
  const why = needs.map((n) => CANNOT[ENGINE][n]).filter(Boolean);
  if (why.length > 0) it.skip(`${name} [cannot run in ${ENGINE}: ${why.join('; ')}]`, fn);
  else it(name, fn, timeout);
}

export function tempProfileDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'peb-profile-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Harness {
  site: string;
  polar: MockPolarServer;
  close(): Promise<void>;
}

/** The static site and a fresh mock Polar (CORS on). */
export async function startHarness(options: MockPolarOptions = {}): Promise<Harness> {
  const site = await startStaticServer();
  const polar = await startMockPolar({ cors: true, ...options });
  return {
    site: site.url,
    polar,
    async close() {
      await polar.close();
      await site.close();
    },
  };
}

/**
 * Opens the test page (which loads the bundle and defines `window.T`), pointed at the mock server,
 * in a new tab of `session` or in `tab`. `query` adds to the page's URL (`locks=0`: no Web Locks).
 */
export async function openTestPage(session: Session, h: Harness, tab?: Tab, query = ''): Promise<Tab> {
  const t = tab ?? (await session.newTab());
  await t.goto(`${h.site}/pages/index.html?api=${encodeURIComponent(h.polar.url)}${query}`);
  await waitFor('the test page', () => t.evaluate(() => (window as unknown as { T?: unknown }).T !== undefined));
  return t;
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every stored external_id was stored once, and these are exactly the ids expected. */
export function storedOnce(polar: MockPolarServer): { ids: string[]; maxCount: number } {
  const counts = polar.countByExternalId();
  return { ids: [...counts.keys()].sort(), maxCount: Math.max(0, ...counts.values()) };
}
