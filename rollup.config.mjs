import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';

// Runtime dependencies stay external: users' bundlers dedupe them, and the
// mock server's node: imports must never be bundled.
const external = (id) =>
  id === 'idb' || id === 'superstruct' || id === 'p-retry' || id.startsWith('node:') || /^(idb|superstruct|p-retry)\//.test(id);

const entries = {
  index: 'src/index.ts',
  'mock-server': 'src/mock-server/index.ts',
};

export default [
  {
    input: entries,
    external,
    output: [
      { dir: 'dist', format: 'es', entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js', sourcemap: true },
      { dir: 'dist', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: 'chunks/[name]-[hash].cjs', sourcemap: true, exports: 'named' },
    ],
    plugins: [typescript({ tsconfig: './tsconfig.json', declaration: false, outDir: 'dist', sourceMap: true })],
  },
  {
    input: entries,
    external,
    output: [
      { dir: 'dist', format: 'es', entryFileNames: '[name].d.ts', chunkFileNames: 'chunks/[name]-[hash].d.ts' },
      { dir: 'dist', format: 'es', entryFileNames: '[name].d.cts', chunkFileNames: 'chunks/[name]-[hash].d.cts' },
    ],
    plugins: [dts({ tsconfig: './tsconfig.json' })],
  },
];
