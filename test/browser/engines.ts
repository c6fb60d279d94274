/**
 * One adapter per browser engine, so every browser test drives the same small surface: a session
 * (a fresh storage partition) holds tabs; a tab opens a URL, evaluates a function, reloads, closes.
 * - chromium: Debian's Chromium through playwright-core (CDP).
 * - firefox: Debian's Firefox ESR through playwright-core's WebDriver BiDi path.
 * - webkit: WebKitGTK's MiniBrowser through WebKitWebDriver (WebDriver classic: HTTP and JSON, a
 *   client of our own below) under Xvfb.
 * The engine of a run is PEB_ENGINE (default chromium); test/browser/run.mjs runs all three.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type CDPSession, chromium, firefox, type Page } from 'playwright-core';
import { CHROMIUM_ARGS } from '../../bench/chromium-args.mjs';
import { startXvfb } from './xvfb.mjs';

export type EngineName = 'chromium' | 'firefox' | 'webkit';
export const ENGINES: readonly EngineName[] = ['chromium', 'firefox', 'webkit'];
export const ENGINE = (process.env.PEB_ENGINE ?? 'chromium') as EngineName;
if (!ENGINES.includes(ENGINE)) throw new Error(`PEB_ENGINE must be one of ${ENGINES.join(', ')}, not "${ENGINE}"`);

export const BINARIES: Record<EngineName, string> = {
  chromium: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  firefox: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr',
  webkit: process.env.WEBKIT_DRIVER_PATH ?? '/usr/bin/WebKitWebDriver',
};
export const MINIBROWSER = process.env.MINIBROWSER_PATH ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

const FIREFOX_PREFS = {
  // navigator.storage.persist() would wait on a permission prompt.
  'permissions.default.persistent-storage': 1,
};

/** What an engine cannot do under automation on Linux; a test that needs it says so in its name. */
export const CANNOT: Record<EngineName, Partial<Record<Capability, string>>> = {
  chromium: {},
  firefox: {
    crash: 'a renderer crash needs Chromium CDP (Page.crash)',
    cdp: 'needs Chromium CDP',
  },
  webkit: {
    crash: 'a renderer crash needs Chromium CDP (Page.crash)',
    cdp: 'needs Chromium CDP',
    offline: 'WebDriver classic cannot take the browser offline',
    restart: 'WebKit storage does not survive automation sessions',
  },
};
export type Capability = 'crash' | 'cdp' | 'offline' | 'restart';

export interface Tab {
  /** Runs `fn(arg)` in the page (a self-contained function, as with Playwright) and resolves to its JSON result. */
  evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<Awaited<R>>;
  /** The same with an expression's source (its value, awaited). */
  evaluate<R = any>(expression: string): Promise<R>;
  goto(url: string): Promise<void>;
  /** The tab's URL, read without running script (a page that is navigating still answers). */
  url(): Promise<string>;
  reload(): Promise<void>;
  close(): Promise<void>;
  screenshot(): Promise<Buffer>;
  /** Kills the renderer without pagehide or unload (Chromium only). */
  crash(): Promise<void>;
  /** A CDP session on this tab (Chromium only). */
  cdp(): Promise<CDPSession>;
}

export interface Session {
  newTab(): Promise<Tab>;
  setOffline(offline: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface Engine {
  name: EngineName;
  version: string;
  newSession(): Promise<Session>;
  /** A session over a profile kept in `dir`, for "browser restart" tests (not WebKit). */
  launchProfile(dir: string): Promise<Session>;
  close(): Promise<void>;
}

const pageErrors = (page: Page) => page.on('pageerror', (error) => console.error(`[${ENGINE} page error] ${error.message}`));

function playwrightTab(page: Page, context: BrowserContext): Tab {
  pageErrors(page);
  return {
    evaluate: ((fn: never, arg: never) => page.evaluate(fn, arg)) as Tab['evaluate'],
    goto: async (url) => void (await page.goto(url)),
    url: async () => page.url(),
    reload: async () => void (await page.reload()),
    close: () => page.close(),
    screenshot: () => page.screenshot(),
    async cdp() {
      if (ENGINE !== 'chromium') throw new Error(`cdp(): ${ENGINE} has no CDP`);
      return context.newCDPSession(page);
    },
    async crash() {
      if (ENGINE !== 'chromium') throw new Error(`crash(): ${CANNOT[ENGINE].crash}`);
      const cdp: CDPSession = await context.newCDPSession(page);
      const crashed = new Promise((resolve) => page.once('crash', resolve));
      // Page.crash never answers (the renderer is gone): wait for the crash event instead.
      void cdp.send('Page.crash').catch(() => undefined);
      await crashed;
    },
  };
}

function playwrightSession(context: BrowserContext, closeAlso?: () => Promise<void>): Session {
  let first: Page | undefined = context.pages()[0];
  return {
    async newTab() {
      const page = first ?? (await context.newPage());
      first = undefined;
      return playwrightTab(page, context);
    },
    setOffline: (offline) => context.setOffline(offline),
    async close() {
      await context.close().catch(() => undefined);
      await closeAlso?.();
    },
  };
}

function playwrightEngine(name: 'chromium' | 'firefox', browser: Browser, version: string): Engine {
  return {
    name,
    version,
    newSession: async () => playwrightSession(await browser.newContext()),
    async launchProfile(dir) {
      const context =
        name === 'chromium'
          ? await chromium.launchPersistentContext(dir, { executablePath: BINARIES.chromium, headless: true, args: CHROMIUM_ARGS })
          : await firefox.launchPersistentContext(dir, {
              channel: 'moz-firefox',
              executablePath: BINARIES.firefox,
              headless: true,
              firefoxUserPrefs: FIREFOX_PREFS,
            } as never);
      return playwrightSession(context);
    },
    close: () => browser.close(),
  };
}

// ----- WebDriver classic, for WebKitGTK ----------------------------------------------------------

class WebDriverError extends Error {}

async function wd(base: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as { value: any };
  if (res.status >= 400 || json.value?.error) throw new WebDriverError(`WebDriver ${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
  return json.value;
}

/**
 * The page side of evaluate(): `fn` comes as source, runs as a function of `arg`, and its result
 * or error comes back as JSON. `__name` is what esbuild's keepNames may leave in a function's text.
 */
const EVALUATE = `
const [source, arg, done] = arguments;
var __name = (f) => f;
Promise.resolve()
  .then(() => (0, eval)('(' + source + ')')(arg))
  .then((value) => done({ ok: true, value: value === undefined ? null : value }), (e) => done({ ok: false, error: String((e && e.stack) || e) }));
`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function webkitEngine(): Promise<Engine> {
  let xvfb: { display: string; stop(): void } | undefined;
  // The runner starts one Xvfb for the whole run; a file run alone starts its own.
  const display = process.env.PEB_DISPLAY ?? (xvfb = await startXvfb()).display;
  const port = await freePort();
  const driver: ChildProcess = spawn(BINARIES.webkit, [`--port=${port}`, '--host=127.0.0.1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DISPLAY: display },
  });
  let driverLog = '';
  driver.stderr!.on('data', (d) => (driverLog = (driverLog + d).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    try {
      if ((await wd(base, 'GET', '/status')).ready !== undefined) break;
    } catch {
      if (driver.exitCode !== null || Date.now() - started > 20_000) throw new Error(`WebKitWebDriver did not start: ${driverLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const sessions = new Set<Session>();
  let version = '';

  async function newSession(): Promise<Session> {
    const created = await wd(base, 'POST', '/session', {
      capabilities: {
        alwaysMatch: {
          browserName: 'MiniBrowser',
          'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation', '--features=+StorageAPI,+StorageAPIEstimate'] },
        },
      },
    });
    version = created.capabilities.browserVersion;
    const s = `/session/${created.sessionId}`;
    await wd(base, 'POST', `${s}/timeouts`, { script: 120_000, pageLoad: 60_000 });
    let unused: string | undefined = (await wd(base, 'GET', `${s}/window/handles`))[0];
    let current = unused;
    // One command at a time per session: every command first switches to its tab's window.
    let chain: Promise<unknown> = Promise.resolve();
    // `handle` undefined: any open window will do (New Window needs a current one).
    const run = <T>(handle: string | undefined, command: () => Promise<T>): Promise<T> => {
      const next = chain.then(async () => {
        const target = handle ?? current ?? (await wd(base, 'GET', `${s}/window/handles`))[0];
        if (current !== target) {
          await wd(base, 'POST', `${s}/window`, { handle: target });
          current = target;
        }
        return command();
      });
      chain = next.catch(() => undefined);
      return next;
    };
    const session: Session = {
      async newTab() {
        let handle = unused;
        unused = undefined;
        if (!handle) handle = (await run(undefined, () => wd(base, 'POST', `${s}/window/new`, { type: 'tab' }))).handle as string;
        const h = handle;
        return {
          async evaluate(fn: ((arg: unknown) => unknown) | string, arg?: unknown) {
            const source = typeof fn === 'string' ? `() => (${fn})` : fn.toString();
            const result = await run(h, () => wd(base, 'POST', `${s}/execute/async`, { script: EVALUATE, args: [source, arg ?? null] }));
            if (!result.ok) throw new Error(result.error);
            return result.value;
          },
          goto: (url) => run(h, () => wd(base, 'POST', `${s}/url`, { url })),
          url: () => run(h, () => wd(base, 'GET', `${s}/url`)),
          reload: () => run(h, () => wd(base, 'POST', `${s}/refresh`, {})),
          close: () =>
            run(h, async () => {
              // Closing the last window would end the session: keep a blank one for the next tab.
              if ((await wd(base, 'GET', `${s}/window/handles`)).length === 1) {
                unused = (await wd(base, 'POST', `${s}/window/new`, { type: 'tab' })).handle;
              }
              await wd(base, 'DELETE', `${s}/window`);
              current = undefined;
            }),
          screenshot: async () => Buffer.from(await run(h, () => wd(base, 'GET', `${s}/screenshot`)), 'base64'),
          crash: () => Promise.reject(new Error(`crash(): ${CANNOT.webkit.crash}`)),
          cdp: () => Promise.reject(new Error('cdp(): webkit has no CDP')),
        };
      },
      setOffline: () => Promise.reject(new Error(`setOffline(): ${CANNOT.webkit.offline}`)),
      async close() {
        sessions.delete(session);
        await chain;
        await wd(base, 'DELETE', s).catch(() => undefined);
      },
    };
    sessions.add(session);
    return session;
  }

  // The version comes with a session's capabilities.
  await (await newSession()).close();
  return {
    name: 'webkit',
    version,
    newSession,
    launchProfile: () => Promise.reject(new Error(`launchProfile(): ${CANNOT.webkit.restart}`)),
    async close() {
      for (const session of [...sessions]) await session.close();
      driver.kill();
      xvfb?.stop();
    },
  };
}

/** Launches this run's engine and records its version for the runner's summary. */
export async function launchEngine(): Promise<Engine> {
  const binary = BINARIES[ENGINE];
  if (!existsSync(binary)) throw new Error(`${ENGINE} is missing at ${binary}: run .ci/run (apt-get install chromium firefox-esr webkit2gtk-driver xvfb)`);
  let engine: Engine;
  if (ENGINE === 'chromium') {
    const browser = await chromium.launch({ executablePath: binary, headless: true, args: CHROMIUM_ARGS });
    engine = playwrightEngine('chromium', browser, browser.version());
  } else if (ENGINE === 'firefox') {
    const browser = await firefox.launch({ channel: 'moz-firefox', executablePath: binary, headless: true, firefoxUserPrefs: FIREFOX_PREFS } as never);
    engine = playwrightEngine('firefox', browser, browser.version());
  } else {
    engine = await webkitEngine();
  }
  const dir = process.env.PEB_RESULTS_DIR;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${ENGINE}.version`), engine.version);
  }
  return engine;
}
