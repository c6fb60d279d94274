// Runs the browser suite (vitest.browser.config.ts) once per engine: Chromium, Firefox ESR and
// WebKitGTK (under one Xvfb started here), then prints one line per engine:
//   chromium <version>: N passed, M failed
// and exits non-zero on any failure. A test an engine cannot run is registered skipped with the
// engine and the reason in its name; those are listed above the engine lines.
//   node test/browser/run.mjs [--engine=firefox,...] [--chaos] [vitest args...]
// --chaos runs only the crash campaign (test/browser/chaos.test.ts) at its full size
// (PEB_CHAOS_RUNS, default 100 runs per engine) and prints its figures.
// Without an engine's binary: in CI (env CI set) that is a failure; elsewhere the line says the
// engine did not run and how to install it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startXvfb } from './xvfb.mjs';

const BINARIES = {
  chromium: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  firefox: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr',
  webkit: process.env.WEBKIT_DRIVER_PATH ?? '/usr/bin/WebKitWebDriver',
};
const args = process.argv.slice(2);
const pick = args.find((a) => a.startsWith('--engine='));
const chaos = args.includes('--chaos');
const rest = args.filter((a) => a !== pick && a !== '--chaos');
const engines = pick ? pick.slice('--engine='.length).split(',') : ['chromium', 'firefox', 'webkit'];
const results = mkdtempSync(join(tmpdir(), 'peb-browser-'));
const env = { ...process.env, PEB_RESULTS_DIR: results };
if (chaos) env.PEB_CHAOS_RUNS ??= '100';

function vitest(engine, extraEnv) {
  const argv = [
    'vitest',
    'run',
    '-c',
    'vitest.browser.config.ts',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${join(results, `${engine}.json`)}`,
  ];
  if (chaos) argv.push('test/browser/chaos.test.ts');
  return new Promise((resolve) => {
    const child = spawn('npx', [...argv, ...rest], { stdio: 'inherit', env: { ...env, ...extraEnv, PEB_ENGINE: engine } });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

const lines = [];
const cannot = [];
const timings = [];
let failed = false;
let xvfb;
try {
  for (const engine of engines) {
    if (!existsSync(BINARIES[engine])) {
      const how = 'install it with .ci/run (apt-get install chromium firefox-esr webkit2gtk-driver xvfb)';
      lines.push(`${engine}: DID NOT RUN (missing ${BINARIES[engine]}; ${how})`);
      if (process.env.CI) failed = true;
      continue;
    }
    const extra = {};
    if (engine === 'webkit' && !process.env.PEB_DISPLAY) {
      xvfb ??= await startXvfb();
      extra.PEB_DISPLAY = xvfb.display;
    }
    const started = Date.now();
    const code = await vitest(engine, extra);
    timings.push(`${engine} ${((Date.now() - started) / 1000).toFixed(0)} s`);
    let passed = 0;
    let fails = 0;
    try {
      const report = JSON.parse(readFileSync(join(results, `${engine}.json`), 'utf8'));
      for (const file of report.testResults) {
        for (const t of file.assertionResults) {
          if (t.status === 'passed') passed++;
          else if (t.status === 'failed') fails++;
          else cannot.push(`  ${t.fullName}`);
        }
        // A file that failed before its tests ran (a launch error) counts as one failure.
        if (file.assertionResults.length === 0 && file.status === 'failed') fails++;
      }
    } catch {
      fails++;
    }
    if (code !== 0 && fails === 0) fails++;
    if (fails > 0) failed = true;
    const versionFile = join(results, `${engine}.version`);
    const version = existsSync(versionFile) ? readFileSync(versionFile, 'utf8').trim() : 'unknown';
    lines.push(`${engine} ${version}: ${passed} passed, ${fails} failed`);
  }
} finally {
  xvfb?.stop();
}

if (chaos && existsSync(join(results, 'chaos.txt'))) console.log(`\n${readFileSync(join(results, 'chaos.txt'), 'utf8').trim()}`);
if (cannot.length > 0) console.log(`\nCannot run in that engine (the reason is in the name):\n${cannot.join('\n')}`);
console.log(`\nBrowser suite wall time per engine: ${timings.join(', ')}`);
console.log(lines.join('\n'));
rmSync(results, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
