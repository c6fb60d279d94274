import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
const code = `import { createEventBuffer, httpTransport } from './src/index.ts';\nglobalThis.__k = [createEventBuffer, httpTransport];\n`;
const r = await build({ stdin: { contents: code, resolveDir: process.cwd(), loader: 'ts' }, bundle: true, minify: process.env.MIN !== '0', format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' });
const out = r.outputFiles[0].contents;
if (process.env.DUMP) (await import('node:fs')).writeFileSync(process.env.DUMP, out);
console.log('total', out.length, gzipSync(out, { level: 9 }).length);
