import typescript from '@rollup/plugin-typescript';
import { nodeResolve } from '@rollup/plugin-node-resolve';
import { dts } from 'rollup-plugin-dts';

// Runtime dependencies stay external: users' bundlers dedupe them, and the
// mock server's node: imports must never be bundled.
const external = (id) =>
  id === 'idb' || id === 'superstruct' || id === 'p-retry' || id === 'react' || id.startsWith('node:') || /^(idb|superstruct|p-retry|react)\//.test(id);

// superstruct (and idb) ship ESM-only types, so TypeScript in a CommonJS consumer (module node16,
// skipLibCheck false) refuses a plain import of them from our .d.cts files (TS1479). A types-only
// import may name its resolution mode (TypeScript >= 5.3), which makes it legal there.
const cjsTypeImports = {
  name: 'cjs-type-imports',
  renderChunk(code, chunk) {
    if (!chunk.fileName.endsWith('.d.cts')) return null;
    return code.replace(/^import \{([^}]*)\} from '(idb|superstruct|p-retry)';$/gm, "import type {$1} from '$2' with { 'resolution-mode': 'import' };");
  },
};

const entries = {
  index: 'src/index.ts',
  mirror: 'src/mirror/index.ts',
  meters: 'src/meters/index.ts',
  react: 'src/react/index.ts',
  'mock-server': 'src/mock-server/index.ts',
  relay: 'src/relay/index.ts',
};

// p-retry is ESM-only: a CommonJS build that require()d it would need Node >= 20.19 (require(esm)).
// The CommonJS build bundles it (and its one dependency) so `require('polar-event-buffer')` works on
// every Node >= 20; idb and superstruct ship CommonJS builds of their own and stay external.
const cjsExternal = (id) => id === 'idb' || id === 'superstruct' || id === 'react' || id.startsWith('node:') || /^(idb|superstruct|react)\//.test(id);

const compile = () => typescript({ tsconfig: './tsconfig.json', declaration: false, outDir: 'dist', sourceMap: true });

export default [
  {
    input: entries,
    external,
    output: { dir: 'dist', format: 'es', entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js', sourcemap: true },
    plugins: [compile()],
  },
  {
    input: entries,
    external: cjsExternal,
    output: { dir: 'dist', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: 'chunks/[name]-[hash].cjs', sourcemap: true, exports: 'named' },
    plugins: [nodeResolve({ exportConditions: ['node', 'import', 'default'] }), compile()],
  },
  {
    input: entries,
    external,
    output: [
      { dir: 'dist', format: 'es', entryFileNames: '[name].d.ts', chunkFileNames: 'chunks/[name]-[hash].d.ts' },
      { dir: 'dist', format: 'es', entryFileNames: '[name].d.cts', chunkFileNames: 'chunks/[name]-[hash].d.cts' },
    ],
    plugins: [dts({ tsconfig: './tsconfig.json' }), cjsTypeImports],
  },
];
