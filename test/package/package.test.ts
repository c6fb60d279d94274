/**
 * Packaging smoke test: what `npm publish` would ship, checked the way a user meets it.
 *
 * 1. `npm pack` holds dist/, README.md, LICENSE and package.json, nothing else.
 * 2. publint (strict) and @arethetypeswrong/cli pass for both entries, ESM and CommonJS.
 * 3. The tarball installs into a scratch project under os.tmpdir() (dependencies from the npm
 *    cache, `--prefer-offline`) and is imported from ESM, from CommonJS (both run a real
 *    track → flush against the packed mock server) and from TypeScript compiled with
 *    moduleResolution "bundler" and "node16" (ESM and CommonJS files).
 *
 * Needs `dist/` (built here when missing; `npm test` builds first). Takes about 20-30 s.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

// Building, packing, attw and tsc spawn processes that take seconds on an idle machine and several
// times that on a loaded 2-core one: every test and hook of this file may take 4 minutes.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

let scratch: string;
let tarball: string;
let packedFiles: string[];

async function sh(file: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${e.message}`);
  }
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'dist', 'mock-server.d.cts'))) {
    await sh('npm', ['run', 'build'], root);
  }
  scratch = await mkdtemp(join(tmpdir(), 'polar-event-buffer-pack-'));
  const packOut = await sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], root);
  const [info] = JSON.parse(packOut) as { filename: string; files: { path: string }[] }[];
  tarball = join(scratch, info!.filename);
  packedFiles = info!.files.map((f) => f.path).sort();

  const app = join(scratch, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }));
  await sh('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', '--loglevel=error'], app);
  // What a TypeScript user of the mock server has anyway: Node's types.
  await mkdir(join(app, 'node_modules', '@types'), { recursive: true });
  await symlink(join(root, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'), 'dir');
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('npm pack', () => {
  test('ships only dist/, README.md, LICENSE and package.json', () => {
    const stray = packedFiles.filter((f) => !f.startsWith('dist/') && !['README.md', 'LICENSE', 'package.json'].includes(f));
    expect(stray).toEqual([]);
  });

  test('ships the README, the LICENSE and both entries for ESM and CommonJS with their types', () => {
    expect(packedFiles).toEqual(
      expect.arrayContaining([
        'README.md',
        'LICENSE',
        'package.json',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/index.d.cts',
        'dist/mock-server.js',
        'dist/mock-server.cjs',
        'dist/mock-server.d.ts',
        'dist/mock-server.d.cts',
        'dist/relay.js',
        'dist/relay.cjs',
        'dist/relay.d.ts',
        'dist/relay.d.cts',
      ]),
    );
  });
});

describe('package linters', () => {
  test('publint (strict) finds nothing to fix', async () => {
    // The CLI, not the API: vitest resolves the "development" export conditions some tools ship as TS sources.
    const out = await sh(bin('publint'), ['run', tarball, '--strict', '--pack', 'false'], root).catch((e: Error) => e.message);
    expect(out).toMatch(/All good!/);
  });

  test('attw finds no types problem for either entry, from ESM, CommonJS or a bundler', async () => {
    const out = await sh(bin('attw'), [tarball, '--format', 'json'], root).catch((e: Error) => {
      // attw exits 1 when it finds problems; the JSON is still on stdout.
      const json = e.message.slice(e.message.indexOf('{'));
      return json.slice(0, json.lastIndexOf('}') + 1);
    });
    const report = JSON.parse(out) as { problems?: Record<string, { kind: string; entrypoint: string; resolutionKind: string }[]> };
    // typesVersions gives each subpath its types under moduleResolution "node10" too.
    const problems = Object.values(report.problems ?? {}).flat();
    expect(problems).toEqual([]);
  });
});

describe('the installed tarball', () => {
  const program = (load: string) => `
${load}
const polar = await mock.startMockPolar();
try {
  const buffer = pkg.createEventBuffer({
    transport: pkg.httpTransport({ baseUrl: polar.url }),
    indexedDB: new IDBFactory(),
    autoFlush: false,
  });
  // The mirror entry recognises a buffer of the main entry: they share dist's chunks.
  const mirror = mirrorPkg.createMirror(buffer);
  await buffer.track({ name: 'smoke', externalCustomerId: 'user_1', metadata: { n: 1 } });
  const report = await buffer.flush();
  const merged = (await mirror.query()).length;
  await buffer.close();
  const names = ['createEventBuffer', 'httpTransport', 'isPolarEventBufferError', 'EventValidationError', 'TrackInputStruct'];
  console.log(JSON.stringify({ exports: names.filter((n) => pkg[n] !== undefined), sent: report.sent, stored: polar.events.length, merged }));
} finally {
  await polar.close();
}`;
  const fake = join(root, 'node_modules', 'fake-indexeddb');
  // fake-indexeddb stands in for the browser's IndexedDB (idb needs its classes as globals).
  const esmFake = `import ${JSON.stringify(pathToFileURL(join(fake, 'auto', 'index.mjs')).href)};
import { IDBFactory } from ${JSON.stringify(pathToFileURL(join(fake, 'build', 'esm', 'index.js')).href)};`;
  const cjsFake = `require(${JSON.stringify(join(fake, 'auto', 'index.js'))});
const { IDBFactory } = require(${JSON.stringify(join(fake, 'build', 'cjs', 'index.js'))});`;

  test('works from ESM: track, flush to the packed mock server', async () => {
    const file = join(scratch, 'app', 'esm.mjs');
    await writeFile(
      file,
      program(`${esmFake}
import * as pkg from 'polar-event-buffer';
import * as mirrorPkg from 'polar-event-buffer/mirror';
import * as mock from 'polar-event-buffer/mock-server';`),
    );
    const out = JSON.parse(await sh(process.execPath, [file], join(scratch, 'app')));
    expect(out).toEqual({
      exports: ['createEventBuffer', 'httpTransport', 'isPolarEventBufferError', 'EventValidationError', 'TrackInputStruct'],
      sent: 1,
      stored: 1,
      merged: 1,
    });
  });

  test('works from CommonJS: track, flush to the packed mock server', async () => {
    const file = join(scratch, 'app', 'cjs.cjs');
    await writeFile(
      file,
      `${cjsFake}
const pkg = require('polar-event-buffer');
const mirrorPkg = require('polar-event-buffer/mirror');
const mock = require('polar-event-buffer/mock-server');
(async () => {${program('')}
})().catch((error) => { console.error(error); process.exit(1); });`,
    );
    const out = JSON.parse(await sh(process.execPath, [file], join(scratch, 'app')));
    expect(out).toEqual({
      exports: ['createEventBuffer', 'httpTransport', 'isPolarEventBufferError', 'EventValidationError', 'TrackInputStruct'],
      sent: 1,
      stored: 1,
      merged: 1,
    });
  });

  const consumer = `import { createEventBuffer, httpTransport, isPolarEventBufferError } from 'polar-event-buffer';
import type { BufferedEvent, EventBufferOptions, FlushReport } from 'polar-event-buffer';
import { startMockPolar } from 'polar-event-buffer/mock-server';
import type { MockPolarServer } from 'polar-event-buffer/mock-server';

export async function main(): Promise<number> {
  const polar: MockPolarServer = await startMockPolar();
  const options: EventBufferOptions = { transport: httpTransport({ baseUrl: polar.url }) };
  const buffer = createEventBuffer(options);
  const event: BufferedEvent = await buffer.track({ name: 'typed', externalCustomerId: 'u1', metadata: { n: 1 } });
  const report: FlushReport = await buffer.flush();
  // The package's types are real, not any: tsc fails on an unused @ts-expect-error.
  // @ts-expect-error status is a union of strings
  const wrong: number = event.status;
  void wrong;
  await polar.close();
  return isPolarEventBufferError(null) ? -1 : report.sent;
}
`;

  async function compile(config: Record<string, unknown>, files: Record<string, string>): Promise<void> {
    const dir = await mkdtemp(join(scratch, 'app', 'ts-'));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          lib: ['es2022', 'dom'],
          types: ['node'],
          strict: true,
          noEmit: true,
          // Check our .d.ts/.d.cts files too (where a CommonJS import of ESM-only types fails),
          // but not TypeScript's own lib files.
          skipLibCheck: false,
          skipDefaultLibCheck: true,
          ...config,
        },
        include: Object.keys(files),
      }),
    );
    await sh(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], dir);
  }

  test('type-checks from TypeScript with moduleResolution "bundler"', async () => {
    await compile({ module: 'esnext', moduleResolution: 'bundler' }, { 'consumer.ts': consumer });
  });

  test('type-checks from TypeScript with moduleResolution "node16", in ESM and CommonJS files', async () => {
    await compile({ module: 'node16', moduleResolution: 'node16' }, { 'consumer.mts': consumer, 'consumer.cts': consumer });
  });

  test('the installed package.json keeps its exports map', async () => {
    const pkg = JSON.parse(await readFile(join(scratch, 'app', 'node_modules', 'polar-event-buffer', 'package.json'), 'utf8'));
    expect(Object.keys(pkg.exports)).toEqual(['.', './mirror', './meters', './react', './mock-server', './relay', './package.json']);
  });

  test('the relay entry works from ESM and CommonJS: a device request reaches the packed mock server', async () => {
    const body = (load: string) => `${load}
const polar = await mock.startMockPolar({ token: 't' });
try {
  const relay = relayPkg.createRelay({ accessToken: 't', baseUrl: polar.url, window: 0, authenticate: () => ({ externalCustomerId: 'u1' }) });
  const response = await relay.fetch(new Request('http://app/v1/events/ingest', { method: 'POST', body: JSON.stringify({ events: [{ name: 'smoke' }] }) }));
  await relay.close();
  console.log(JSON.stringify({ status: response.status, stored: polar.events.map((e) => e.external_customer_id), listener: typeof relayPkg.nodeListener }));
} finally {
  await polar.close();
}`;
    const esm = join(scratch, 'app', 'relay.mjs');
    await writeFile(esm, body(`import * as relayPkg from 'polar-event-buffer/relay';\nimport * as mock from 'polar-event-buffer/mock-server';`));
    const cjs = join(scratch, 'app', 'relay.cjs');
    await writeFile(
      cjs,
      `const relayPkg = require('polar-event-buffer/relay');\nconst mock = require('polar-event-buffer/mock-server');\n(async () => {${body('')}\n})().catch((error) => { console.error(error); process.exit(1); });`,
    );
    for (const file of [esm, cjs]) {
      expect(JSON.parse(await sh(process.execPath, [file], join(scratch, 'app')))).toEqual({ status: 200, stored: ['u1'], listener: 'function' });
    }
  });
});
