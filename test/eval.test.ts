import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { CharTokenizer } from '../src/lm/tokenizer.js';
import { evalArithmetic } from '../src/lmbuild/eval-arithmetic.js';
import { selectBackend } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { logSumExp } from '../src/core/math.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';
import { pairsConfig as sharedPairsConfig } from './helpers/pairs-config.js';
import { FineTuneSetup } from '../src/finetune/setup.js';
import { loadExamples } from '../src/finetune/examples.js';
import { scoreRows } from '../src/finetune/score.js';
import { sequenceLogProbs } from '../src/finetune/posterior.js';
import type { ZConstraints, ZSample } from '../src/finetune/rollout.js';
import { beamSearchZ, decodeZ } from '../src/tasks/decode.js';
import { defaultConstraints } from '../src/tasks/policy.js';
import { evalArithmeticFile, majorityVote } from '../src/tasks/arithmetic.js';
import { SftBaseline } from '../src/baselines/sft.js';
import { ReinforceBaseline } from '../src/baselines/reinforce.js';
import { bleu } from '../src/metrics/text.js';
import { subjPairs } from '../src/tasks/subj.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const model = writeTempModel(5, { nCtx: 128 }, {}, 2);
after(() => model.cleanup());
const work = mkdtempSync(join(tmpdir(), 'ft-eval-'));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const tok = new CharTokenizer();

test('majority vote: most frequent parsed answer, ties to the first seen, null when none parsed', () => {
  assert.equal(majorityVote([3, null, 5, 5, 3, 5]), 5);
  assert.equal(majorityVote([7, 2, 2, 7]), 7);
  assert.equal(majorityVote([null, null]), null);
  assert.equal(majorityVote([null, -4]), -4);
});

/** Every Z over {a, b} with |Z| ≤ 3 (15 sequences), and the base LM's exact constrained log-probabilities. */
async function enumerate(session: LmSession, x: number[], c: ZConstraints) {
  const zs: ZSample[] = [];
  const grow = (p: number[]) => {
    zs.push({ tokens: p, isAction: new Uint8Array(p.length).fill(1) });
    if (p.length < c.maxLength) for (const id of c.allowedIds!) grow([...p, id]);
  };
  grow([]);
  const rows = await scoreRows(
    session,
    zs.map(() => x),
    zs,
    zs.map(() => tok.encode('.')),
    c,
    { prior: 'lm', likelihoodWeight: 1, temperature: 1 },
    { prefix: false },
  );
  const lp = sequenceLogProbs(rows, { d: session.hiddenSize, V: session.vocabSize, stop: c.stopId }, (_h, base) => base, 1);
  return { zs, lp, rows };
}

test('beam search: exhaustive width returns every Z in order of exact log P; width 1 equals greedy sampling', async () => {
  await selectBackend();
  const session = await LmSession.open(model.dir);
  const c: ZConstraints = { minLength: 0, maxLength: 3, allowedIds: tok.encode('ab'), tool: 'none', stopId: tok.eosTokenId };
  const prompts = ['The cat', 'A dog ran'].map((s) => tok.encode(s));
  const dec = { session, tok, constraints: c };
  const beams = await beamSearchZ(dec, prompts, 15);
  for (const [i, x] of prompts.entries()) {
    const { zs, lp } = await enumerate(session, x, c);
    assert.ok(Math.abs(logSumExp(lp)) < 1e-4, 'the enumeration holds all the mass');
    const order = zs.map((z, k) => ({ z: z.tokens.join(','), lp: lp[k] })).sort((a, b) => b.lp - a.lp);
    assert.deepEqual(
      beams[i].map((z) => z.tokens.join(',')),
      order.map((o) => o.z),
    );
  }
  const wide = { ...c, maxLength: 6, allowedIds: tok.encode('abcde ') };
  const greedy = await decodeZ({ ...dec, constraints: wide }, prompts, 2, { kind: 'greedy' }, new Rng(0));
  const beam1 = await beamSearchZ({ ...dec, constraints: wide }, prompts, 1);
  prompts.forEach((_, i) => {
    assert.deepEqual(greedy[i][0].tokens, beam1[i][0].tokens);
    assert.deepEqual(greedy[i][1].tokens, greedy[i][0].tokens, 'greedy repeats its one sequence K times');
  });
});

test('arithmetic eval: greedy with the calculator matches the independent greedy evaluator of src/lm', async () => {
  await selectBackend();
  const session = await LmSession.open('models/arith-char');
  const c = defaultConstraints('arithmetic', tok);
  const file = 'data/arithmetic/test_3op.json';
  const mine = await evalArithmeticFile({ session, tok, constraints: c }, file, {
    samples: 3,
    decode: { kind: 'sample', temperature: 1 },
    seed: 1,
    limit: 6,
  });
  const ref = await evalArithmetic(session, tok, file, { calculator: true, limit: 6 });
  mine.items.forEach((it, i) => assert.equal(it.greedy.z + it.greedy.y, ref.examples[i].output));
  assert.equal(mine.summary.greedyAccuracy, ref.accuracy);
  // Against the data, not against the calculator: num_sol is read from the file, every
  // "a op b = c" the greedy text holds is checked by the test's own arithmetic, and the
  // answer is parsed here. The shipped model solves all six greedily (measured: 6/6), so a
  // calculator that adds wrong drops the accuracy (the issue measured 1.0 → 0.17).
  const gold: { str_query: string; num_sol: number }[] = JSON.parse(readFileSync(file, 'utf8'));
  mine.items.forEach((it, i) => {
    const text = it.greedy.z + it.greedy.y;
    for (const [, a, op, b, c] of text.matchAll(/(-?\d+) ([+-]) (-?\d+) = (-?\d+)/g)) {
      const want = op === '+' ? Number(a) + Number(b) : Number(a) - Number(b);
      assert.equal(Number(c), want, `item ${i}: calculator step "${a} ${op} ${b} =" in ${JSON.stringify(text)}`);
    }
    const m = /The answer is (-?\d+)\./.exec(text);
    assert.equal(
      m ? Number(m[1]) : null,
      gold[i].num_sol,
      `item ${i} (${gold[i].str_query}): greedy answer vs num_sol in ${JSON.stringify(text)}`,
    );
    assert.equal(it.answer, gold[i].num_sol);
  });
  assert.equal(mine.summary.greedyAccuracy, 1, 'greedy accuracy vs num_sol');
  assert.equal(ref.accuracy, 1, 'greedy accuracy of the src/lmbuild evaluator vs num_sol');
  for (const it of mine.items) {
    assert.equal(it.vote, majorityVote(it.samples.map((s) => s.answer)));
    assert.equal(it.voteCorrect, it.vote === it.answer);
  }
  const again = await evalArithmeticFile({ session, tok, constraints: c }, file, {
    samples: 3,
    decode: { kind: 'sample', temperature: 1 },
    seed: 1,
    limit: 6,
  });
  assert.deepEqual(again.items, mine.items, 'same seed, same samples');
});

/** An enumerable task (341 Z over 4 tokens, |Z| ≤ 4) on the tiny random model. */
const pairsConfig = (over: Record<string, unknown> = {}) => sharedPairsConfig(model.dir, over);

async function policyOverAll(t: FineTuneSetup) {
  const ex = t.examples[0];
  const zs: ZSample[] = [];
  const grow = (p: number[]) => {
    zs.push({ tokens: p, isAction: new Uint8Array(p.length).fill(1) });
    if (p.length < 4) for (const id of t.constraints.allowedIds!) grow([...p, id]);
  };
  grow([]);
  const rows = await scoreRows(
    t.session,
    zs.map(() => ex.xIds),
    zs,
    zs.map(() => ex.yIds),
    t.constraints,
    t.rewardSpec(),
    { prefix: false },
  );
  const lp = sequenceLogProbs(
    rows,
    { d: t.session.hiddenSize, V: t.session.vocabSize, stop: t.constraints.stopId },
    (h, b) => t.adapter.logits(h, b),
    1,
  );
  const logR = rows.map((r) => r.logR);
  const lz = logSumExp(Float64Array.from(logR));
  return { zs, policy: Array.from(lp, Math.exp), posterior: logR.map((l) => Math.exp(l - lz)), logR };
}

test('SFT raises the probability of the gold rationale; REINFORCE on log R collapses onto argmax R', async () => {
  // the second pair's gold Z (5 tokens) is longer than z.maxLength (4): SFT leaves it out
  const sftT = await FineTuneSetup.create(
    pairsConfig({
      task: {
        kind: 'pairs',
        pairs: [
          { x: 'The cat', y: ' sat.', z: 'cab' },
          { x: 'A dog', y: ' ran.', z: 'abcda' },
        ],
      },
    }),
  );
  const gold = tok.encode('cab').join(',');
  const before = await policyOverAll(sftT);
  const gi = before.zs.findIndex((z) => z.tokens.join(',') === gold);
  const sft = await SftBaseline.create(sftT);
  assert.equal(sft.goldCount, 1);
  assert.equal(sft.infeasible, 1);
  for (let i = 0; i < 60; i++) await sft.trainStep();
  const afterSft = await policyOverAll(sftT);
  assert.ok(afterSft.policy[gi] > 0.9 && before.policy[gi] < 0.05, `P(gold) ${before.policy[gi]} → ${afterSft.policy[gi]}`);

  const rlT = await FineTuneSetup.create(pairsConfig({ train: { steps: 120, batchSize: 16 }, optim: { lr: 0.01 } }));
  const rl = new ReinforceBaseline(rlT);
  for (let i = 0; i < 120; i++) await rl.trainStep();
  const r = await policyOverAll(rlT);
  const best = r.logR.indexOf(Math.max(...r.logR));
  const top = Math.max(...r.policy);
  // the posterior spreads its mass; the reward maximizer puts most of it on very few Z
  const maxPost = Math.max(...r.posterior);
  assert.ok(maxPost < 0.5, `the posterior is spread out (max ${maxPost})`);
  assert.ok(top > 0.5 && top > 2 * maxPost, `REINFORCE concentrates: max P_θ ${top} vs max posterior ${maxPost}`);
  const expLogR = r.policy.reduce((s, p, k) => s + p * r.logR[k], 0);
  const postLogR = r.posterior.reduce((s, p, k) => s + p * r.logR[k], 0);
  assert.ok(expLogR > postLogR, `E_θ[log R] ${expLogR} exceeds E_posterior[log R] ${postLogR}`);
  assert.ok(r.policy[best] > r.posterior[best], 'more mass than the posterior on argmax R');
});

test('flowtune compare (infill) → comparison.csv/json; eval infill is seeded; bad input exits 2', () => {
  const sentences = join(work, 'sentences.txt');
  const words = 'the of and to a in is it that was for on are with as be at by this have from or one had'.split(' ');
  const rng = new Rng(9);
  writeFileSync(
    sentences,
    Array.from({ length: 12 }, () => Array.from({ length: 7 + rng.int(4) }, () => words[rng.int(words.length)]).join(' ')).join('\n') +
      '\n',
  );
  const trainCfg = join(work, 'infill.yaml');
  writeFileSync(
    trainCfg,
    YAML.stringify({
      objective: 'tb',
      seed: 0,
      model: model.dir,
      task: { kind: 'infill', sentences, limit: 8 },
      z: { minLength: 1, maxLength: 8, allowed: [...'abcdefghijklmnopqrstuvwxyz '] },
      head: { whitenRollouts: 8 },
      train: { steps: 3, batchSize: 4, logEvery: 1, checkpointEvery: 3 },
    }),
  );
  const cmpCfg = join(work, 'compare.yaml');
  writeFileSync(
    cmpCfg,
    YAML.stringify({
      task: 'infill',
      train: trainCfg,
      eval: { limit: 3, samples: 3, seed: 0 },
      methods: [
        { name: 'base-T1', kind: 'base' },
        { name: 'base-greedy', kind: 'base', decode: 'greedy' },
        { name: 'sft', kind: 'sft' },
        { name: 'reinforce', kind: 'reinforce' },
        { name: 'gfn-tb', kind: 'gfn', objective: 'tb' },
      ],
    }),
  );
  const out = join(work, 'cmp');
  const r = run('compare', '--config', cmpCfg, '--out', out, '--quiet', '--json');
  assert.equal(r.status, 0, r.stderr);
  const cmp = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(
    cmp.rows.map((x: { method: string }) => x.method),
    ['base-T1', 'base-greedy', 'sft', 'reinforce', 'gfn-tb'],
  );
  const csv = readFileSync(join(out, 'comparison.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], cmp.columns.join(','));
  assert.equal(csv.length, 6);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'comparison.json'), 'utf8')).rows, cmp.rows);
  // BLEU-4 of a row recomputed from its per-item file
  for (const row of cmp.rows) {
    const items = readFileSync(join(out, 'methods', row.method, 'seed-0', 'eval-infill.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(items.length, 3);
    assert.equal(items[0].index, 8, 'held-out items start after the 8 training items');
    const b =
      items.reduce(
        (s: number, it: { reference: string; samples: { z: string }[] }) =>
          s + it.samples.reduce((t, x) => t + bleu(x.z, [it.reference]), 0) / it.samples.length,
        0,
      ) / items.length;
    assert.ok(Math.abs(b - row['BLEU-4']) < 1e-12, `${row.method}: BLEU ${row['BLEU-4']} vs recomputed ${b}`);
  }
  const greedyItems = readFileSync(join(out, 'methods', 'base-greedy', 'seed-0', 'eval-infill.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  for (const it of greedyItems) assert.equal(new Set(it.samples.map((s: { z: string }) => s.z)).size, 1);
  assert.ok(existsSync(join(out, 'methods', 'sft', 'seed-0', 'baseline.json')));

  const e1 = run('eval', 'infill', '--run', join(out, 'methods', 'gfn-tb', 'seed-0'), '--samples', '2', '--seed', '4', '--json');
  const e2 = run('eval', 'infill', '--run', join(out, 'methods', 'gfn-tb', 'seed-0'), '--samples', '2', '--seed', '4', '--json');
  assert.equal(e1.status, 0, e1.stderr);
  const j1 = JSON.parse(e1.stdout.trim().split('\n').pop()!),
    j2 = JSON.parse(e2.stdout.trim().split('\n').pop()!);
  delete j1.parts[0].seconds;
  delete j2.parts[0].seconds;
  assert.deepEqual(j1, j2);
  // e2 replaced e1's per-item file; a file eval did not write (the run's metrics) is never overwritten
  const runMetrics = join(out, 'methods', 'gfn-tb', 'seed-0', 'metrics.jsonl');
  const metricsBefore = readFileSync(runMetrics, 'utf8');
  const refused = run('eval', 'infill', '--run', join(out, 'methods', 'gfn-tb', 'seed-0'), '--samples', '2', '--out', runMetrics);
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /metrics\.jsonl exists and is a run file; eval does not overwrite files it did not write/);
  assert.equal(readFileSync(runMetrics, 'utf8'), metricsBefore);

  for (const args of [
    ['compare', '--config', cmpCfg, '--out', out],
    ['compare', '--config', trainCfg],
    ['eval', 'infill', '--run', out, '--base', model.dir],
    ['eval', 'arithmetic', '--base', model.dir, '--data', join(work, 'missing.json')],
    ['eval', 'infill', '--run', join(out, 'methods', 'gfn-tb', 'seed-0'), '--samples', 'x'],
  ]) {
    const b = run(...args);
    assert.equal(b.status, 2, `${args.join(' ')}: ${b.stderr}`);
    assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
  }
});

test('subj: configs hold subjPairs of the shipped files; eval subj predicts from the label margins', () => {
  for (const n of [10, 20, 50]) {
    const cfg = YAML.parse(readFileSync(`configs/subj-${n}.yaml`, 'utf8'));
    assert.deepEqual(cfg.task.pairs, subjPairs(`data/subj/train.${n}.jsonl`, 80));
  }
  const out = join(work, 'subj.jsonl');
  const r = run(
    'eval',
    'subj',
    '--base',
    model.dir,
    '--data',
    'data/subj/train.10.jsonl',
    '--samples',
    '3',
    '--max-chars',
    '40',
    '--out',
    out,
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const items = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(items.length, 10);
  let correct = 0;
  for (const it of items) {
    assert.ok(it.text.length <= 40);
    const votes = it.samples.filter((s: { margin: number }) => s.margin > 0).length;
    const sum = it.samples.reduce((t: number, s: { margin: number }) => t + s.margin, 0);
    assert.equal(it.predicted, votes * 2 > 3 ? 1 : votes * 2 < 3 ? 0 : sum > 0 ? 1 : 0);
    correct += it.predicted === it.label ? 1 : 0;
  }
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.parts[0].accuracy, correct / 10);
});

test('free arithmetic: gold rationales get their results written in as actions (the data leaves "a op b =" open)', () => {
  const base = {
    objective: 'tb',
    seed: 0,
    model: model.dir,
    task: { kind: 'arithmetic', train: ['data/arithmetic/train_50.json'], limit: 1 },
  };
  const free = loadExamples(validate({ ...base, z: { tool: 'none', stop: '.' } }, trainConfigSchema, 'test'), tok)[0];
  // train_50[0]: 6 - 0 - 4 - 8, rationale "6 - 0 =, 6 - 4 =, 2 - 8 ="
  assert.equal(tok.decode(free.gold!.tokens), ' 6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6');
  assert.ok(free.gold!.isAction.every((a) => a === 1));
  const tool = loadExamples(validate({ ...base, z: { tool: 'calculator', stop: '.' } }, trainConfigSchema, 'test'), tok)[0];
  assert.equal(tok.decode(tool.gold!.tokens), ' 6 - 0 = 6, 6 - 4 = 2, 2 - 8 = -6');
  assert.equal(tool.gold!.isAction.filter((a) => a === 0).length, ' 6 2 -6'.length, 'tool results are environment steps');
});
