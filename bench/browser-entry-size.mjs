/**
 * The size of the browser entry, one measure for `npm run bench` and test/size.test.ts: the entry
 * bundled by esbuild WITH everything it imports (no externals, so idb, superstruct and p-retry
 * count), minified, then gzipped at level 9.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** @param {string} entry @returns {Promise<{ outputs: Uint8Array[], minified: Uint8Array, gzipped: number }>} */
export async function browserEntrySize(entry) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    external: [],
  });
  const outputs = result.outputFiles.map((file) => file.contents);
  const minified = outputs[0];
  return { outputs, minified, gzipped: gzipSync(minified, { level: 9 }).length };
}
