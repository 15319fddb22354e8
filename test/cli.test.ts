import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

function assertUsageError(r: ReturnType<typeof run>, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+/m, 'no stack trace');
}

test('bad arguments: one line on stderr, exit code 2', () => {
  assertUsageError(run('bench', 'hypergrid', '--algo', 'ppo'), /--algo must be one of tb, db, subtb, softdqn, mdqn/);
  assertUsageError(run('bench', 'hypergrid', '--algo', 'tb', '--height', '1'), /--height/);
  assertUsageError(run('bench', 'hypergrid', '--algo', 'tb', '--ndim', 'abc'), /--ndim must be an integer/);
  assertUsageError(run('bench', 'hypergrid', '--algo', 'tb', '--iterations', '2.5'), /--iterations/);
  assertUsageError(run('bench', 'hypergrid'), /algo/);
  assertUsageError(run('bench', 'hypergrid', '--algo', 'tb', '--bogus', '3'), /bogus/);
  assertUsageError(run('verify', 'theorem', '--height', 'x'), /--height/);
  assertUsageError(run('nonsense'), /.+/);
});

test('verify theorem --json reports the exact identities', () => {
  const r = run('verify', 'theorem', '--ndim', '3', '--height', '8', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(Math.abs(Math.exp(j.logZTrue) - 48.512) < 1e-9);
  assert.ok(j.maxAbsVMinusLogF < 1e-9 && j.tvSoftOptimal < 1e-9 && j.valueIdentityMaxError < 1e-9);
});

test('bench hypergrid --json --out writes metrics.jsonl and refuses to overwrite a run', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'ft-')), 'run');
  const r = run(
    'bench',
    'hypergrid',
    '--algo',
    'tb',
    '--ndim',
    '2',
    '--height',
    '4',
    '--iterations',
    '30',
    '--eval-every',
    '10',
    '--hidden',
    '32,32',
    '--out',
    out,
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  for (const k of [
    'algo',
    'ndim',
    'height',
    'iterations',
    'trajectories',
    'seconds',
    'trajPerSec',
    'tvExact',
    'l1Empirical',
    'kl',
    'logZ',
    'logZTrue',
  ])
    assert.ok(k in j, k);
  assert.equal(j.trajectories, 30 * 16);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [10, 20, 30],
  );
  assert.ok(existsSync(join(out, 'summary.json')));
  const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
  assertUsageError(
    run('bench', 'hypergrid', '--algo', 'tb', '--ndim', '2', '--height', '4', '--iterations', '5', '--out', out),
    /already exists/,
  );
  assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8'), before, 'earlier run untouched');
  const file = join(out, 'not-a-dir');
  writeFileSync(file, 'x');
  assertUsageError(
    run('bench', 'hypergrid', '--algo', 'tb', '--iterations', '5', '--out', join(file, 'sub')),
    /cannot create folder .*is a file, not a folder \(ENOTDIR\)/,
  );
});

test('info --json names the backend', () => {
  const r = run('info', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim());
  assert.ok(['wasm', 'cpu', 'tensorflow'].includes(j.backend));
});

test('flags are named as typed, bounds as numbers, and no "NaN" where a value is undefined', () => {
  assertUsageError(run('bench', 'bitseq', '--algo', 'tb', '-n', '7'), /^flowtune: -n must be an integer in \[8, 100000\] \(got 7\)$/);
  assertUsageError(run('bench', 'bitseq', '--algo', 'tb', '--beta', '0'), /^flowtune: --beta must be a number > 0 \(got 0\)$/);
  assertUsageError(run('bench', 'molecules', '--algo', 'tb', '--beta', '-1'), /^flowtune: --beta must be a number > 0 \(got -1\)$/);
  // before the first evaluation there is no exact TV: the first progress line shows "–"
  const r = run(
    'bench',
    'hypergrid',
    '--algo',
    'subtb',
    '--ndim',
    '2',
    '--height',
    '4',
    '--iterations',
    '20',
    '--eval-every',
    '10',
    '--hidden',
    '16,16',
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr.split('\n')[0], /^hypergrid subtb 1\/20 loss \d+\.\d{4} \| tv –$/);
  assert.doesNotMatch(r.stderr + r.stdout, /NaN/);
});
