/** The reproduction plan: argument checking, the settings grid, refusing a folder of another configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseReproduceArgs,
  planRuns,
  iterationsFor,
  configKey,
  mergeReproduceBlocks,
  reproduceBlock,
  totalWallSeconds,
} from '../src/benchmarks/reproduce.js';
import { UsageError } from '../src/core/errors.js';

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
