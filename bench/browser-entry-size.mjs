/**
 * What an app pays, one measure for `npm run bench` and test/size.test.ts: a small module that
 * imports what the app uses, bundled by esbuild WITH everything it pulls in (idb, superstruct and
 * p-retry count), minified, then gzipped at level 9 — the contract's measure.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** The contract's two budgets: the write path, and every browser entry together. */
export const WRITE_PATH = (dir) =>
  `import { createEventBuffer, httpTransport } from '${dir}/index.js';\nglobalThis.__k = [createEventBuffer, httpTransport];\n`;
export const ALL_ENTRIES = (dir) => `export * from '${dir}/index.js';\nexport * from '${dir}/mirror.js';\nexport * from '${dir}/meters.js';\n`;

/** @param {string} code @param {string} resolveDir @returns {Promise<{ minified: number, gzipped: number, inputs: string[] }>} */
export async function bundleSize(code, resolveDir) {
  const result = await build({
    stdin: { contents: code, resolveDir, loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0].contents;
  return { minified: out.length, gzipped: gzipSync(out, { level: 9 }).length, inputs: Object.keys(result.metafile.inputs) };
}
