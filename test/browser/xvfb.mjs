// Starts Xvfb on a display it picks itself (-displayfd), for WebKitGTK's MiniBrowser.
import { spawn } from 'node:child_process';

/** Resolves to { display: ':N', stop() } once the X server accepts clients. */
export function startXvfb() {
  return new Promise((resolve, reject) => {
    const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`Xvfb exited (${code}) before it was ready: ${err.trim()}`)));
    // Xvfb writes the display number, then a newline, once it is ready.
    child.stdio[3].on('data', (d) => {
      out += d;
      if (!out.includes('\n')) return;
      resolve({
        display: `:${out.trim()}`,
        stop: () => {
          if (child.exitCode === null) child.kill();
        },
      });
    });
  });
}
