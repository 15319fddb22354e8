/**
 * The folders of src/ import one way only (docs/design.md §4): each folder may import from
 * itself and from folders earlier in LAYERS, never later; and no file-level import cycle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LAYERS = [
  'core',
  'text',
  'report',
  'nn',
  'lm',
  'lmbuild',
  'gfn',
  'metrics',
  'softrl',
  'envs',
  'mcmc',
  'benchmarks',
  'finetune',
  'tasks',
  'baselines',
  'cli',
];

// dist/test/architecture.test.js → repository root
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const srcDir = path.join(root, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => path.normalize(path.join(path.dirname(file), s.replace(/\.js$/, '.ts'))));
}

const folderOf = (file: string) => path.relative(srcDir, file).split(path.sep)[0];
const files = sources(srcDir);

test('every src folder is a known layer', () => {
  const folders = new Set(files.map(folderOf));
  for (const f of folders) assert.ok(LAYERS.includes(f), `src/${f} is not in the layer list of test/architecture.test.ts`);
});

test('folders import only from earlier layers', () => {
  const bad: string[] = [];
  for (const f of files) {
    const from = LAYERS.indexOf(folderOf(f));
    for (const t of imports(f)) {
      const to = LAYERS.indexOf(folderOf(t));
      if (to > from) bad.push(`${path.relative(root, f)} → ${path.relative(root, t)}`);
    }
  }
  assert.deepEqual(bad, [], `imports against the layer order:\n${bad.join('\n')}`);
});

test('no file-level import cycle', () => {
  const graph = new Map(files.map((f) => [f, imports(f).filter((t) => t.startsWith(srcDir))]));
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (f: string): string | null => {
    if (state.get(f) === 2) return null;
    if (state.get(f) === 1) return [...stack.slice(stack.indexOf(f)), f].map((p) => path.relative(root, p)).join(' → ');
    state.set(f, 1);
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      const cycle = visit(t);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(f, 2);
    return null;
  };
  for (const f of files) {
    const cycle = visit(f);
    assert.equal(cycle, null, `import cycle: ${cycle}`);
  }
});
