// Runs the browser suite (vitest.browser.config.ts) when Chromium is installed.
// Without /usr/bin/chromium: in CI (env CI set) that is a failure; elsewhere it says plainly that
// the suite did not run and how to enable it, and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(chromium)) {
  const how = 'Install it with `apt-get install -y chromium` (as root), then run `npm run test:browser`.';
  if (process.env.CI) {
    console.error(`\nBrowser suite FAILED: Chromium is missing at ${chromium}, and CI requires the browser suite. ${how}\n`);
    process.exit(1);
  }
  console.log(`\nBrowser suite DID NOT RUN: Chromium is missing at ${chromium}. ${how}\n`);
  process.exit(0);
}
const result = spawnSync('npx', ['vitest', 'run', '-c', 'vitest.browser.config.ts', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
