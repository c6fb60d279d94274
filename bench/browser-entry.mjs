// The page side of the bench: bundled by bench/run.mjs (esbuild) with the built dist/index.js and
// its dependencies, served from 127.0.0.1; run.mjs calls window.__bench.run(name, params).
import * as lib from '../dist/index.js';
import { scenarios } from './scenarios.mjs';

const env = {
  lib,
  indexedDB: globalThis.indexedDB,
  // Same origin: run.mjs forwards /v1/* to the mock Polar server.
  baseUrl: location.origin,
  now: () => performance.now(),
};

window.__bench = {
  run: (name, params) => scenarios[name](env, params ?? {}),
};
