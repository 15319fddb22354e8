import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { writeLiveLock } from './helpers/live-lock.js';
import { Rng } from '../src/core/rng.js';
import { makeQuery, rationale } from '../src/text/arithmetic.js';
import { sampleSd, signTestP } from '../src/baselines/stats.js';
import { accuracyByOperands, aggregateRows, pairedTests, type CellResult, type MethodInfo } from '../src/baselines/aggregate.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const model = writeTempModel(5, { nCtx: 128 }, {}, 2);
const work = mkdtempSync(join(tmpdir(), 'ft-cmp-'));
after(() => {
  model.cleanup();
  rmSync(work, { recursive: true, force: true });
});
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('sign test: exact binomial tail values; sample sd', () => {
  assert.equal(signTestP(0, 0), 1);
  assert.equal(signTestP(0, 5), 2 / 32);
  assert.ok(Math.abs(signTestP(9, 1) - (2 * 11) / 1024) < 1e-15);
  assert.ok(Math.abs(signTestP(2, 8) - (2 * (1 + 10 + 45)) / 1024) < 1e-15);
  assert.equal(signTestP(3, 3), 1); // 2 · 42/64 > 1 is capped
  // large n stays finite: P(Bin(500, ½) ≤ 200) ≈ 3.0e-6 by the normal approximation with continuity correction
  const p = signTestP(200, 300);
  assert.ok(p > 1e-6 && p < 1.5e-5, `p ${p}`);
  assert.equal(sampleSd([1, 2, 3]), 1);
  assert.equal(sampleSd([4]), null);
});

const cellOf = (method: string, seed: number, correct: boolean[], acc: number): CellResult => ({
  method,
  seed,
  metrics: { 'T vote acc': acc },
  correct: { T: correct },
  byOperands: { 3: [correct.filter(Boolean).length, correct.length] },
  runDir: null,
  trainSteps: 10,
  trainSeconds: 1,
  evalSeconds: 2,
  resumedFrom: 0,
});

test('aggregation over seeds and the paired test of the best GFlowNet row, by hand', () => {
  const methods: MethodInfo[] = [
    { name: 'gfn-a', kind: 'gfn', label: 'gfn-tb', decode: 'sample' },
    { name: 'gfn-b', kind: 'gfn', label: 'gfn-subtb', decode: 'sample' },
    { name: 'sft', kind: 'sft', label: 'sft', decode: 'sample' },
    { name: 'ppo', kind: 'ppo', label: 'ppo', decode: 'sample' },
  ];
  const T = true,
    F = false;
  const cells = [
    cellOf('gfn-a', 0, [T, T, F, F], 0.5),
    cellOf('gfn-a', 1, [T, F, F, F], 0.25),
    cellOf('gfn-b', 0, [T, T, T, F], 0.75),
    cellOf('gfn-b', 1, [T, T, F, T], 0.75),
    cellOf('sft', 0, [F, T, T, F], 0.5),
    cellOf('sft', 1, [F, T, F, F], 0.25),
    cellOf('ppo', 0, [T, T, T, T], 1),
    cellOf('ppo', 1, [T, T, T, F], 0.75),
  ];
  const rows = aggregateRows(methods, cells, ['T vote acc']);
  assert.equal(rows[0]['T vote acc'], 0.375);
  assert.ok(Math.abs((rows[0]['T vote acc sd'] as number) - Math.SQRT1_2 * 0.25) < 1e-12);
  assert.equal(rows[1]['T vote acc sd'], 0);
  assert.equal(rows[0]['train s'], 2);
  assert.equal(rows[0]['eval s'], 4);
  // best GFlowNet: gfn-b (0.75). Per-item means: gfn-b [1, 1, .5, .5]; sft [0, 1, .5, 0]; ppo [1, 1, 1, .5]
  const tests = pairedTests(methods, cells, rows, ['T']);
  assert.equal(tests.length, 2);
  const [vsSft, vsPpo] = tests;
  assert.deepEqual([vsSft.gfn, vsSft.against, vsSft.wins, vsSft.losses, vsSft.ties], ['gfn-b', 'sft', 2, 0, 2]);
  assert.equal(vsSft.diff, 0.375);
  assert.equal(vsSft.p, 0.5);
  assert.deepEqual([vsPpo.against, vsPpo.wins, vsPpo.losses, vsPpo.ties], ['ppo', 0, 1, 3]);
  assert.equal(vsPpo.diff, -0.125);
  assert.equal(vsPpo.p, 1);
  const ops = accuracyByOperands(methods, cells);
  assert.deepEqual(
    ops.filter((o) => o.method === 'gfn-a').map((o) => [o.operands, o.accuracy, o.items, o.seeds]),
    [[3, 0.375, 4, 2]],
  );
});

/** A seeded 5-operand stand-in for the shipped test_5op (the model helper ships the real one). */
function write5op(file: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const items = Array.from({ length: n }, () => {
    const operands = Array.from({ length: 5 }, () => rng.int(10));
    const ops = Array.from({ length: 4 }, () => (rng.int(2) ? '+' : '-'));
    return { str_query: makeQuery(operands, ops), num_sol: rationale(operands, ops).final };
  });
  writeFileSync(file, JSON.stringify(items));
}

const test5 = join(work, 'test_5op.json');
write5op(test5, 3, 11);
const trainCfg = join(work, 'arith.yaml');
writeFileSync(
  trainCfg,
  YAML.stringify({
    objective: 'tb',
    seed: 0,
    model: model.dir,
    task: { kind: 'arithmetic', train: ['data/arithmetic/train_50.json'], limit: 8 },
    z: { minLength: 1, maxLength: 64, tool: 'calculator', stop: '.' },
    head: { whitenRollouts: 8 },
    exploration: { onPolicy: 0.5, tempered: 0.25, replay: 0.25 },
    train: { steps: 4, batchSize: 4, logEvery: 1, checkpointEvery: 2 },
  }),
);
const cmpCfg = join(work, 'compare.yaml');
const compareConfig = {
  task: 'arithmetic',
  train: trainCfg,
  seeds: [0],
  eval: { data: ['data/arithmetic/test_3op.json', test5], limit: 3, samples: 2, seed: 0 },
  methods: [
    { name: 'base-greedy', kind: 'base', decode: 'greedy' },
    { name: 'base-T1', kind: 'base' },
    { name: 'sft', kind: 'sft' },
    { name: 'ppo', kind: 'ppo', ppo: { groupSize: 2, epochs: 2 } },
    { name: 'gfn-tb', kind: 'gfn', objective: 'tb' },
  ],
};
writeFileSync(cmpCfg, YAML.stringify(compareConfig));

const strip = (rows: Record<string, unknown>[]) =>
  rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'train s' && k !== 'eval s')));

test('flowtune compare over seeds: per-seed folders, mean ± sd, paired tests, operand plot; resume redoes nothing finished; bad input exits 2', async () => {
  const out = join(work, 'cmp');
  const r = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const cmp = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(cmp.seeds, [0, 1]);
  assert.deepEqual(readdirSync(join(out, 'methods', 'base-greedy')), ['seed-0'], 'a deterministic decode is evaluated once');
  for (const m of ['base-T1', 'sft', 'ppo', 'gfn-tb']) assert.deepEqual(readdirSync(join(out, 'methods', m)).sort(), ['seed-0', 'seed-1']);
  assert.ok(existsSync(join(out, 'methods', 'ppo', 'seed-1', 'checkpoints', 'latest')));
  assert.equal(JSON.parse(readFileSync(join(out, 'methods', 'ppo', 'seed-0', 'baseline.json'), 'utf8')).clip, 0.2);
  // each row's mean and sd are those of its per-seed cells, recomputed from the per-item files
  for (const row of cmp.rows) {
    const seeds = readdirSync(join(out, 'methods', row.method));
    const accs = seeds.map((s) => {
      const items = readFileSync(join(out, 'methods', row.method, s, 'eval-test_5op.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(items.length, 3);
      return items.filter((it: { voteCorrect: boolean }) => it.voteCorrect).length / 3;
    });
    const dc = seeds.map((s) => {
      const items = readFileSync(join(out, 'methods', row.method, s, 'eval-test_3op.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      return (
        items.reduce(
          (t: number, it: { answer: number; samples: { z: string; answer: number | null }[] }) =>
            t + new Set(it.samples.filter((x) => x.answer === it.answer).map((x) => x.z)).size / 2,
          0,
        ) / 3
      );
    });
    assert.ok(Math.abs(row['test_3op distinct correct Z'] - dc.reduce((s, v) => s + v, 0) / dc.length) < 1e-12);
    const m = accs.reduce((s, v) => s + v, 0) / accs.length;
    assert.ok(Math.abs(row['test_5op vote acc'] - m) < 1e-12, `${row.method}: ${row['test_5op vote acc']} vs ${m}`);
    if (accs.length === 2) assert.ok(Math.abs(row['test_5op vote acc sd'] - Math.abs(accs[0] - accs[1]) / Math.SQRT2) < 1e-12);
    else assert.equal(row['test_5op vote acc sd'], null);
  }
  // paired tests: the only GFlowNet row against sft and ppo, on both test sets
  assert.deepEqual(
    cmp.paired.map((t: { testSet: string; gfn: string; against: string }) => `${t.testSet}:${t.gfn}:${t.against}`),
    ['test_3op:gfn-tb:sft', 'test_3op:gfn-tb:ppo', 'test_5op:gfn-tb:sft', 'test_5op:gfn-tb:ppo'],
  );
  for (const t of cmp.paired) assert.equal(t.wins + t.losses + t.ties, 3);
  assert.deepEqual([...new Set(cmp.accuracyByOperands.map((p: { operands: number }) => p.operands))], [3, 5]);
  const csv = readFileSync(join(out, 'comparison.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], cmp.columns.join(','));
  assert.ok(cmp.columns.includes('test_5op sign p') && cmp.columns.includes('test_3op vote acc sd'));
  assert.match(r.stdout, /paired test per item/);
  assert.match(r.stdout, /wall time: \d+ s this run/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /data-chart="operands"/);
  assert.match(html, /Paired tests/);

  // a run killed (1) mid-training of gfn-tb seed 1, after its checkpoint at step 2, and (2) after
  // training ppo seed 1 but before its evaluation: --resume ends with the same table and
  // leaves every finished cell untouched
  const killed = join(work, 'killed');
  cpSync(out, killed, { recursive: true });
  rmSync(join(killed, 'comparison.json'));
  rmSync(join(killed, 'methods', 'ppo', 'seed-1', 'result.json'));
  const g = join(killed, 'methods', 'gfn-tb', 'seed-1');
  rmSync(join(g, 'result.json'));
  rmSync(join(g, 'checkpoints', 'step-00000004'), { recursive: true });
  writeFileSync(join(g, 'checkpoints', 'latest'), 'step-00000002\n');
  const untouched = join(killed, 'methods', 'sft', 'seed-1', 'result.json');
  const mtime = statSync(untouched).mtimeMs;
  const bad = run('compare', '--config', cmpCfg, '--seeds', '0,1,2', '--out', killed, '--resume');
  assert.equal(bad.status, 2, 'resuming with other seeds');
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  const again = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', killed, '--resume', '--json');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /\[gfn-tb seed 1\] continued from the checkpoint at step 2/);
  assert.match(again.stderr, /\[sft seed 1\] finished in an earlier run/);
  assert.equal(statSync(untouched).mtimeMs, mtime);
  const resumed = JSON.parse(again.stdout.trim().split('\n').pop()!);
  assert.deepEqual(strip(resumed.rows), strip(cmp.rows));
  assert.deepEqual(resumed.paired, cmp.paired);

  // --reeval: a new eval section (one more item per test set) re-evaluates the trained cells
  // without training them again; going back to the first eval settings gives the first numbers
  const re = join(work, 're');
  cpSync(out, re, { recursive: true });
  const latest = join(re, 'methods', 'gfn-tb', 'seed-1', 'checkpoints', 'latest');
  const latestAt = statSync(latest).mtimeMs;
  const moreItems = ['--set', 'eval.limit=4'];
  // as written by a flowtune whose training schema had no train.updatesPerBatch yet: defaults fill it
  const stateFile = join(re, 'compare-state.json');
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  for (const row of state.train) for (const cfg of row) delete cfg.train.updatesPerBatch;
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  const notResume = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', re, '--resume', ...moreItems);
  assert.equal(notResume.status, 2, '--resume refuses other eval settings');
  for (const other of [
    ['--seeds', '0'],
    ['--seeds', '0,1', '--set', 'set=["train.steps=6"]'],
  ]) {
    const refused = run('compare', '--config', cmpCfg, ...other, '--out', re, '--reeval', ...moreItems);
    assert.equal(refused.status, 2, `--reeval with ${other.join(' ')}: ${refused.stderr}`);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  }
  const four = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', re, '--reeval', ...moreItems, '--json');
  assert.equal(four.status, 0, four.stderr);
  assert.doesNotMatch(four.stderr, /training /);
  assert.match(four.stderr, /\[gfn-tb seed 1\] trained in an earlier run: evaluating .* again/);
  assert.equal(statSync(latest).mtimeMs, latestAt, 'no training step was taken');
  const fourCmp = JSON.parse(four.stdout.trim().split('\n').pop()!);
  const items3 = readFileSync(join(re, 'methods', 'ppo', 'seed-1', 'eval-test_3op.jsonl'), 'utf8')
    .trim()
    .split('\n');
  assert.equal(items3.length, 4);
  const trainS = (rows: Record<string, unknown>[]) => rows.map((x) => [x.method, x['train s']]);
  assert.deepEqual(trainS(fourCmp.rows), trainS(cmp.rows), 'training times are kept');
  const same = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', re, '--reeval', ...moreItems);
  assert.equal(same.status, 0, same.stderr);
  assert.doesNotMatch(same.stderr, /again/, 'cells already evaluated with these settings are read back');
  const back = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', re, '--reeval', '--json');
  assert.equal(back.status, 0, back.stderr);
  const backCmp = JSON.parse(back.stdout.trim().split('\n').pop()!);
  assert.deepEqual(strip(backCmp.rows), strip(cmp.rows));
  assert.deepEqual(backCmp.paired, cmp.paired);

  // a real kill: SIGKILL once the first trained cell is done, then --resume finishes the table
  const real = join(work, 'real');
  const child = spawn(process.execPath, [cli, 'compare', '--config', cmpCfg, '--out', real, '--quiet'], { stdio: 'ignore' });
  const firstDone = join(real, 'methods', 'sft', 'seed-0', 'result.json');
  await new Promise<void>((resolve, reject) => {
    const iv = setInterval(() => {
      if (existsSync(firstDone)) {
        clearInterval(iv);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(iv);
      existsSync(firstDone) ? resolve() : reject(new Error('compare exited before the first cell'));
    });
  });
  // the killed process is gone (reaped) before the resume: until then its lock still names a live pid
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
  const doneAt = statSync(firstDone).mtimeMs;
  const fin = run('compare', '--config', cmpCfg, '--out', real, '--resume', '--json');
  assert.equal(fin.status, 0, fin.stderr);
  assert.match(fin.stderr, /\[sft\] finished in an earlier run/);
  assert.equal(statSync(firstDone).mtimeMs, doneAt);
  const finRows = JSON.parse(fin.stdout.trim().split('\n').pop()!).rows;
  assert.deepEqual(
    finRows.map((x: { method: string; seeds: number }) => `${x.method}:${x.seeds}`),
    ['base-greedy:1', 'base-T1:1', 'sft:1', 'ppo:1', 'gfn-tb:1'],
  );
  // seed 0 of the two-seed run is the same computation: the same numbers
  for (const m of ['sft', 'ppo', 'gfn-tb']) {
    const a = JSON.parse(readFileSync(join(real, 'methods', m, 'seed-0', 'result.json'), 'utf8')).metrics;
    const b = JSON.parse(readFileSync(join(out, 'methods', m, 'seed-0', 'result.json'), 'utf8')).metrics;
    assert.deepEqual(a, b, m);
  }

  const badCfg = (over: Record<string, unknown>) => {
    const f = join(work, `bad-${Object.keys(over).join('-')}.yaml`);
    writeFileSync(f, YAML.stringify({ ...compareConfig, ...over }));
    return f;
  };
  const elsewhere = join(work, 'bad-out');
  // a comparison folder held by a live flowtune process (this test's pid, as its lock says) is refused
  const busy = join(work, 'busy');
  cpSync(out, busy, { recursive: true });
  writeLiveLock(busy, 'compare');
  const held = run('compare', '--config', cmpCfg, '--seeds', '0,1', '--out', busy, '--resume');
  assert.equal(held.status, 2, held.stderr);
  assert.match(held.stderr, new RegExp(`in use by another flowtune process \\(pid ${process.pid} on `));
  for (const args of [
    ['compare', '--config', badCfg({ methods: [{ name: 'dpo', kind: 'dpo' }] }), '--out', elsewhere],
    ['compare', '--config', badCfg({ eval: { data: [join(work, 'test_6op.json')] } }), '--out', elsewhere],
    ['compare', '--config', badCfg({ train: join(work, 'missing.yaml') }), '--out', elsewhere],
    ['compare', '--config', cmpCfg, '--seeds', '0,x', '--out', elsewhere],
    ['compare', '--config', cmpCfg, '--out', out],
    ['compare', '--config', cmpCfg, '--out', join(work, 'never-started'), '--resume'],
  ]) {
    const b = run(...args);
    assert.equal(b.status, 2, `${args.join(' ')}: ${b.stderr}`);
    assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
  }
  assert.ok(!existsSync(elsewhere), 'bad configs are refused before anything is written');
  assert.ok(!existsSync(join(work, 'never-started')), 'a --resume of a folder that holds no comparison creates nothing');
  const noReeval = run('compare', '--config', cmpCfg, '--out', join(work, 'never-started'), '--reeval');
  assert.equal(noReeval.status, 2, noReeval.stderr);
  assert.match(noReeval.stderr, /holds no comparison to re-evaluate/);
  assert.ok(!existsSync(join(work, 'never-started')));
});

for (const [file, model, limit, lora] of [
  ['configs/compare-arithmetic-ood.yaml', 'models/arith-sloppy', undefined, false],
  ['configs/compare-arithmetic-ood-lora.yaml', 'models/arith-sloppy', undefined, true],
  ['configs/compare-arithmetic-ood-weak.yaml', 'models/arith-weak', undefined, false],
] as const)
  test(`${file}: the protocol of Hu et al., and 5-operand chains fit z.maxLength and the context`, async () => {
    const { readCompareConfig } = await import('../src/baselines/compare.js');
    const { readTrainConfig } = await import('../src/finetune/run.js');
    const c = readCompareConfig(file, []);
    assert.deepEqual(c.seeds, [0, 1, 2]);
    assert.deepEqual(c.eval.data, ['data/arithmetic/test_3op.json', 'data/arithmetic/test_4op.json', 'data/arithmetic/test_5op.json']);
    assert.equal(c.eval.limit, limit);
    const kinds = c.methods.map((m) => (m.kind === 'gfn' ? `gfn-${m.objective}` : m.kind === 'base' ? `base-${m.decode}` : m.kind));
    for (const k of ['base-sample', 'base-greedy', 'sft', 'reinforce', 'ppo', 'gfn-tb', 'gfn-subtb', 'gfn-mdqn'])
      assert.ok(kinds.includes(k), k);
    for (const m of c.methods) {
      const cfg = readTrainConfig(c.train, [...c.set, ...m.set, ...(m.objective ? [`objective=${m.objective}`] : [])]);
      assert.equal(cfg.model, model);
      assert.equal(cfg.adapter.kind, lora ? 'lora' : 'head');
      assert.ok(cfg.train.steps >= 1000, `${m.name}: ${cfg.train.steps} steps`);
      assert.deepEqual(cfg.task.train, ['data/arithmetic/train_50.json']);
      assert.deepEqual(cfg.task.pool, ['data/arithmetic/pool_1000.json']);
      assert.equal(cfg.reward.temperature.horizon, 1000);
      // every correct chain of 5 one-digit operands (all 10^5 × 2^4), with the leading space of Z
      let longest = 0;
      if (m.name === 'sft') {
        const ops = ['+', '-'];
        const xs = [0, 0, 0, 0, 0];
        for (let n = 0; n < 1e5; n++) {
          for (let i = 0, v = n; i < 5; i++, v = Math.floor(v / 10)) xs[i] = v % 10;
          for (let o = 0; o < 16; o++)
            longest = Math.max(
              longest,
              1 +
                rationale(
                  xs,
                  [0, 1, 2, 3].map((i) => ops[(o >> i) & 1]),
                ).text.length,
            );
        }
        assert.equal(longest, 55);
        // training items: X ≤ 35 characters (4 operands), Y = ". The answer is -27." ≤ 20; the trainer adds 8
        assert.ok(35 + cfg.z.maxLength + 8 + 20 <= 128, 'X + Z + Y fits a 128-token context');
      }
      assert.ok(cfg.z.maxLength >= 55, `${m.name}: z.maxLength ${cfg.z.maxLength}`);
    }
  });
