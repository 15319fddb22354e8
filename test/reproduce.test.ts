/** The reproduction plan: argument checking, the settings grid, refusing a folder of another configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseReproduceArgs,
  planRuns,
  iterationsFor,
  configKey,
  extendConfig,
  isReproduceConfig,
  mergeReproduceBlocks,
  reproduceBlock,
  totalWallSeconds,
} from '../src/benchmarks/reproduce.js';
import { UsageError } from '../src/core/errors.js';
import { processAlive } from '../src/core/io.js';
import { writeLiveLock } from './helpers/live-lock.js';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'reproduce.js');

test('the full plan: hypergrid 2 rewards × (3 baselines × 2 P_B + M-DQN), bitseq 5 k × 4, molecules 4 β × 4; × seeds', () => {
  const a = parseReproduceArgs(['--family', 'all', '--seeds', '0,1,2']);
  const runs = planRuns(a.config, a.seeds);
  const count = (f: string) => runs.filter((r) => r.family === f).length;
  assert.equal(count('hypergrid'), 2 * 7 * 3);
  assert.equal(count('bitseq'), 5 * 4 * 3);
  assert.equal(count('molecules'), 4 * 4 * 3);
  assert.equal(new Set(runs.map((r) => r.id)).size, runs.length);
  // paper budgets: 10^6 trajectories / 16 on hypergrid, 50,000 iterations elsewhere
  assert.equal(iterationsFor('hypergrid', a.config.budget), 62_500);
  assert.equal(iterationsFor('molecules', { hypergrid: 1, bitseq: 1, molecules: 0.001 }), 50);
});

test('bad input is a UsageError', () => {
  for (const argv of [
    ['--family', 'foo'],
    ['--family', 'all', '--seeds', '1,x'],
    ['--family', 'all', '--seeds', '1,1'],
    ['--family', 'all', '--budget', '0'],
    ['--family', 'all', '--budget', 'bitseq=2'],
    ['--family', 'all', '--jobs', '0'],
    ['--seeds', '1'],
    ['--family', 'all', '--bogus', '1'],
  ])
    assert.throws(() => parseReproduceArgs(argv), UsageError, argv.join(' '));
});

test('seeds and jobs do not change the configuration key; the budget does', () => {
  const a = parseReproduceArgs(['--family', 'hypergrid', '--seeds', '0', '--jobs', '1']);
  const b = parseReproduceArgs(['--family', 'hypergrid', '--seeds', '0,1,2', '--jobs', '2']);
  const c = parseReproduceArgs(['--family', 'hypergrid', '--budget', '0.5']);
  assert.equal(configKey(a.config), configKey(b.config));
  assert.notEqual(configKey(a.config), configKey(c.config));
});

test('the script: exit 2 with one line for bad input and for a folder holding another configuration', () => {
  const run = (args: string[]) => {
    try {
      execFileSync(process.execPath, [script, ...args], { stdio: 'pipe' });
      return { status: 0, lines: [] as string[] };
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      return { status: err.status, lines: err.stderr.toString().trim().split('\n') };
    }
  };
  const bad = run(['--family', 'nope']);
  assert.equal(bad.status, 2);
  assert.equal(bad.lines.length, 1);
  const dir = mkdtempSync(path.join(tmpdir(), 'repro-'));
  const other = parseReproduceArgs(['--family', 'hypergrid', '--budget', '0.5']).config;
  writeFileSync(path.join(dir, 'reproduce.json'), JSON.stringify(other));
  const mixed = run(['--family', 'hypergrid', '--budget', '0.25', '--out', dir, '--no-docs']);
  assert.equal(mixed.status, 2);
  assert.match(mixed.lines[0], /another configuration/);
});

test('--extend: the grids become unions in plan order; another budget, curve or test set is refused', () => {
  const folder = parseReproduceArgs(['--family', 'bitseq', '--budget', 'bitseq=0.1', '--ks', '8,2', '--algos', 'mdqn,tb']).config;
  const next = parseReproduceArgs([
    '--family',
    'molecules',
    '--budget',
    'bitseq=0.1',
    '--ks',
    '10,4',
    '--algos',
    'db',
    '--betas',
    '16',
  ]).config;
  const merged = extendConfig(folder, next);
  assert.ok(typeof merged !== 'string', String(merged));
  assert.deepEqual(merged.families, ['bitseq', 'molecules']);
  assert.deepEqual(merged.algos, ['tb', 'db', 'mdqn']);
  assert.deepEqual(merged.ks, [2, 4, 8, 10]);
  assert.deepEqual(merged.betas, [4, 8, 10, 16]);
  // every run of either configuration is in the merged plan, under the same id and arguments
  const plan = new Map(planRuns(merged, [0]).map((r) => [r.id, r.args.join(' ')]));
  for (const c of [folder, next]) for (const r of planRuns(c, [0])) assert.equal(plan.get(r.id), r.args.join(' '), r.id);
  const cheaper = parseReproduceArgs(['--family', 'bitseq', '--budget', 'bitseq=0.05', '--points', '5']).config;
  const refused = extendConfig(folder, cheaper);
  assert.equal(typeof refused, 'string');
  assert.match(refused as string, /budget .* points 5 differs/);
  assert.ok(isReproduceConfig(JSON.parse(JSON.stringify(folder))));
  for (const x of [null, [], 'x', { ...folder, ks: 8 }, { ...folder, points: '10' }]) assert.ok(!isReproduceConfig(x), JSON.stringify(x));
});

test('the script with --extend runs only the new settings and keeps the finished runs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'repro-extend-'));
  const base = ['--family', 'bitseq', '--seeds', '0', '--jobs', '2', '--budget', 'bitseq=0.0002', '--ks', '12'];
  const small = ['--bitseq-test-modes', '1', '--orders', '1', '--points', '1', '--out', dir, '--no-docs'];
  execFileSync(process.execPath, [script, ...base, '--algos', 'tb', ...small], { stdio: 'pipe' });
  const tbSummary = path.join(dir, 'bitseq/k12/tb/seed-0/summary.json');
  const first = readFileSync(tbSummary, 'utf8');
  // without --extend another grid is refused, with a hint
  let refusal = '';
  try {
    execFileSync(process.execPath, [script, ...base, '--algos', 'db', ...small], { stdio: 'pipe' });
  } catch (e) {
    refusal = (e as { stderr: Buffer }).stderr.toString();
  }
  assert.match(refusal, /another configuration.*--extend/);
  execFileSync(process.execPath, [script, ...base, '--algos', 'db', ...small, '--extend'], { stdio: 'pipe' });
  assert.equal(readFileSync(tbSummary, 'utf8'), first, 'the finished TB run was kept, not redone');
  assert.ok(existsSync(path.join(dir, 'bitseq/k12/db/seed-0/summary.json')));
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'reproduce.json'), 'utf8')).algos, ['tb', 'db']);
  const table = readFileSync(path.join(dir, 'results.md'), 'utf8');
  assert.match(table, /\| bitseq\/k12\/tb \|/);
  assert.match(table, /\| bitseq\/k12\/db \|/);
  assert.match(table, /--algos tb,db/);
});

test("docs merge: a run of one family replaces only that family's block; a new family goes after the last block", () => {
  const doc = [
    '# Doc',
    '',
    reproduceBlock('hypergrid', 'old hypergrid'),
    '',
    reproduceBlock('bitseq', 'old bitseq'),
    '',
    '### After',
    '',
  ].join('\n');
  const once = mergeReproduceBlocks(doc, { hypergrid: reproduceBlock('hypergrid', 'new hypergrid') });
  assert.ok(once.includes('new hypergrid') && !once.includes('old hypergrid'));
  assert.ok(once.includes('old bitseq'), 'the bitseq block is kept');
  assert.equal(once.replace('new hypergrid', 'old hypergrid'), doc, 'nothing else changes');
  const added = mergeReproduceBlocks(once, { molecules: reproduceBlock('molecules', 'mol $& table') });
  assert.ok(added.indexOf('mol $& table') > added.indexOf('<!-- reproduce:bitseq:end -->'), 'after the last block, text taken literally');
  assert.ok(added.indexOf('mol $& table') < added.indexOf('### After'));
  const fresh = mergeReproduceBlocks('# Empty\n', { bitseq: reproduceBlock('bitseq', 'b') });
  assert.match(fresh, /## Reproduction \(npm run reproduce\)\n\n<!-- reproduce:bitseq:begin/);
});

test("total wall time: the union of the invocations' spans (side-by-side ones once), plus records without a start", () => {
  const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 0, min)).toISOString();
  const inv = (a: number, b: number) => ({ started: at(a), finished: at(b), wallSeconds: (b - a) * 60, runs: 1 });
  assert.equal(totalWallSeconds([]), 0);
  assert.equal(totalWallSeconds([inv(0, 45)]), 45 * 60);
  // killed at 45, then two invocations side by side from 46 to 58 and 46 to 59
  assert.equal(totalWallSeconds([inv(0, 45), inv(46, 58), inv(46, 59)]), (45 + 13) * 60);
  // order does not matter; a nested span adds nothing; an old record without a start adds its seconds
  assert.equal(totalWallSeconds([inv(10, 20), inv(0, 30), { finished: at(90), wallSeconds: 100, runs: 3 }]), 30 * 60 + 100);
});

test('the script leaves a run folder that a live process is writing alone, and a signal stops its bench processes', async () => {
  const args = ['--family', 'hypergrid', '--seeds', '0', '--algos', 'tb', '--rewards', 'standard', '--no-docs'];
  const a = parseReproduceArgs(args);
  const ids = planRuns(a.config, a.seeds).map((r) => r.id);
  // every planned run folder "held" by this test's process: nothing is deleted or redone
  const held = mkdtempSync(path.join(tmpdir(), 'repro-held-'));
  for (const id of ids) {
    mkdirSync(path.join(held, id), { recursive: true });
    writeLiveLock(path.join(held, id), 'bench');
    writeFileSync(path.join(held, id, 'metrics.jsonl'), 'being written\n');
  }
  let status = 0,
    stderr = '';
  try {
    execFileSync(process.execPath, [script, ...args, '--budget', 'hypergrid=0.001', '--out', held], { stdio: 'pipe' });
  } catch (e) {
    status = (e as { status: number }).status;
    stderr = (e as { stderr: Buffer }).stderr.toString();
  }
  assert.equal(status, 1, stderr);
  for (const id of ids) {
    assert.match(stderr, new RegExp(`${id} is being written by pid ${process.pid} on `));
    assert.equal(readFileSync(path.join(held, id, 'metrics.jsonl'), 'utf8'), 'being written\n');
  }
  // SIGTERM to the script: the bench process it started (found by its run lock) stops too
  const out = mkdtempSync(path.join(tmpdir(), 'repro-signal-'));
  const child = spawn(process.execPath, [script, ...args, '--budget', 'hypergrid=1', '--jobs', '1', '--out', out], { stdio: 'ignore' });
  const lockFile = path.join(out, ids[0], '.flowtune.lock');
  for (let i = 0; i < 400 && !existsSync(lockFile); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsSync(lockFile), 'the first bench process started');
  const benchPid = JSON.parse(readFileSync(lockFile, 'utf8')).pid as number;
  assert.ok(processAlive(benchPid));
  const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(code ?? (signal ? -1 : null))));
  child.kill('SIGTERM');
  assert.equal(await exited, 143);
  for (let i = 0; i < 100 && processAlive(benchPid); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(!processAlive(benchPid), `bench process ${benchPid} still running after the script was stopped`);
});
