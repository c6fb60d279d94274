// Every code block of README.md, CONTRIBUTING.md and docs/ is checked, so no snippet goes stale:
// TypeScript/TSX/JS blocks are type-checked against src/ (one module each, the names a snippet
// takes for granted declared in docs-globals.d.ts), JSON blocks parse, and shell blocks name npm
// scripts that exist. Every relative link resolves to a file, and every #anchor to a heading.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const pages = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const out = join(root, 'node_modules/.docs-snippets');

interface Block {
  page: string;
  line: number;
  lang: string;
  code: string;
}

function blocksOf(page: string): Block[] {
  const lines = readFileSync(join(root, page), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    blocks.push({ page, line: start + 1, lang: open[1] ?? '', code: body.join('\n') });
  }
  return blocks;
}

const blocks = pages.flatMap(blocksOf);
const CODE = new Set(['ts', 'tsx', 'js', 'mjs']);

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

function anchorsOf(page: string): Set<string> {
  const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

let diagnostics: Map<string, string[]>;

beforeAll(() => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const files: string[] = [];
  blocks.forEach((b, i) => {
    if (!CODE.has(b.lang)) return;
    const ext = b.lang === 'tsx' ? 'tsx' : 'ts';
    const file = join(out, `${b.page.replace(/[/.]/g, '_')}_${b.line}_${i}.${ext}`);
    // `export {}` makes each block a module of its own (top-level await, no clashes between blocks).
    writeFileSync(file, `${b.code}\nexport {};\n`);
    files.push(file);
  });
  const program = ts.createProgram([...files, join(root, 'test/docs/docs-globals.d.ts')], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    jsx: ts.JsxEmit.ReactJSX,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: ['node', 'react'],
    typeRoots: [join(root, 'node_modules/@types')],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    allowJs: true,
    baseUrl: root,
    paths: {
      'polar-event-buffer': ['src/index.ts'],
      'polar-event-buffer/*': ['src/*/index.ts'],
    },
  });
  diagnostics = new Map();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const name = d.file ? relative(out, d.file.fileName) : '(program)';
    const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : 0;
    diagnostics.set(name, [...(diagnostics.get(name) ?? []), `+${at + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`]);
  }
}, 120_000);

describe('code blocks', () => {
  test('the pages hold code blocks to check (none of the tests below passes on an empty list)', () => {
    expect(blocks.filter((b) => CODE.has(b.lang)).length).toBeGreaterThan(15);
  });

  test('every TypeScript and JavaScript block type-checks against src/', () => {
    const failures = blocks.flatMap((b, i) => {
      const name = `${b.page.replace(/[/.]/g, '_')}_${b.line}_${i}.${b.lang === 'tsx' ? 'tsx' : 'ts'}`;
      return (diagnostics.get(name) ?? []).map((d) => `${b.page}:${b.line} ${d}`);
    });
    expect([...(diagnostics.get('(program)') ?? []), ...failures]).toEqual([]);
  });

  test('every JSON block parses', () => {
    const bad = blocks
      .filter((b) => b.lang === 'json')
      .filter((b) => {
        try {
          JSON.parse(b.code);
          return false;
        } catch {
          return true;
        }
      });
    expect(bad.map((b) => `${b.page}:${b.line}`)).toEqual([]);
  });

  test('every npm script a shell block runs exists', () => {
    const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
    const missing = blocks
      .filter((b) => b.lang === 'sh')
      .flatMap((b) => [...b.code.matchAll(/npm (?:run )?(\w[\w:-]*)/g)].map((m) => ({ b, name: m[1]! })))
      .filter(({ name }) => !['ci', 'install', 'run', 'i'].includes(name) && !(name in scripts));
    expect(missing.map(({ b, name }) => `${b.page}:${b.line} npm ${name}`)).toEqual([]);
  });

  test('every block says its language', () => {
    expect(blocks.filter((b) => b.lang === '').map((b) => `${b.page}:${b.line}`)).toEqual([]);
  });
});

describe('links', () => {
  test('every relative link resolves to a file, and every anchor to a heading', () => {
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!)) continue;
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path ? relative(root, resolve(dirname(join(root, page)), path)) : page;
        let ok = true;
        try {
          readdirSync(join(root, file));
        } catch {
          try {
            readFileSync(join(root, file));
          } catch {
            ok = false;
          }
        }
        if (ok && anchor && file.endsWith('.md')) ok = anchorsOf(file).has(anchor);
        if (!ok) broken.push(`${page}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
