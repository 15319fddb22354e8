import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { sampleZ } from '../src/finetune/rollout.js';
import { scoreRows } from '../src/finetune/score.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { exactPosterior } from '../src/finetune/posterior.js';
import { type LoraPolicyAdapter, nestPrefixes } from '../src/finetune/lora-adapter.js';
import { TokenSoftQ } from '../src/finetune/soft-q.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const model = writeTempModel(3, {}, {}, 2);
const work = mkdtempSync(join(tmpdir(), 'ft-lora-train-'));
after(() => {
  model.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The CI-size posterior check of train-lm.test.ts (341 sequences, random-weight tiny GPT), with LoRA. */
const loraConfig = (objective: string, steps: number, over: Record<string, unknown> = {}) => ({
  objective,
  seed: 0,
  model: model.dir,
  task: { kind: 'pairs', pairs: [{ x: 'The cat', y: ' sat.' }] },
  z: { maxLength: 4, allowed: ['a', 'b', 'c', 'd'] },
  reward: { prior: 'allowed', likelihoodWeight: 4 },
  adapter: { kind: 'lora', rank: 4, alpha: 8, targets: ['c_attn', 'c_proj', 'c_fc', 'lm_head'] },
  exploration: { epsilon: { start: 0.1, end: 0, horizon: Math.ceil(steps / 2) } },
  train: { steps, batchSize: 16, logEvery: 5, checkpointEvery: 10 },
  ...over,
});

test('LoRA: a run restored from a checkpoint ends on exactly the numbers (and adapter) of an uninterrupted one', async () => {
  const cfg = validate(loraConfig('subtb', 16), trainConfigSchema, 'test');
  const full = await LmTrainer.create(cfg);
  let a = null;
  for (let i = 0; i < 16; i++) a = await full.trainStep();
  const cut = await LmTrainer.create(cfg);
  for (let i = 0; i < 8; i++) await cut.trainStep();
  const dir = join(work, 'resume');
  cut.saveCheckpoint(dir);
  for (let i = 0; i < 3; i++) await cut.trainStep(); // progress after the checkpoint is lost, as with kill -9
  const resumed = await LmTrainer.create(cfg);
  resumed.restore(dir);
  assert.equal(resumed.step, 8);
  let b = null;
  while (resumed.step < 16) b = await resumed.trainStep();
  assert.equal(b!.loss, a!.loss);
  assert.equal(b!.meanLogR, a!.meanLogR);
  assert.equal(b!.logZ, a!.logZ);
  const fa = (full.adapter as LoraPolicyAdapter).lora.factors(),
    fb = (resumed.adapter as LoraPolicyAdapter).lora.factors();
  let moved = 0;
  for (const [n, f] of fa) {
    assert.deepEqual(fb.get(n)!.a, f.a);
    assert.deepEqual(fb.get(n)!.b, f.b);
    moved = Math.max(moved, ...Array.from(f.b, Math.abs));
  }
  assert.ok(moved > 0, 'training moved B off zero');
});

/**
 * The CI-size posterior check of train-lm.test.ts with LoRA on every linear layer including
 * lm_head. Without lm_head TB plateaued at TV 0.059 (the final LayerNorm bounds the logits,
 * README "Adapters"); with it each objective reaches the head's target.
 */
for (const objective of ['tb', 'subtb', 'mdqn']) {
  test(`LoRA (${objective}) fits the exact posterior p(Z | X, Y) at CI size (TV < 0.05, log Z within 0.1)`, async () => {
    const steps = 300;
    const over = objective === 'mdqn' ? { exploration: { epsilon: { start: 0.1, end: 0.1, horizon: 0 } }, dqn: { replayBatch: 32 } } : {};
    const cfg = validate(loraConfig(objective, steps, { optim: { lr: 0.01 }, ...over }), trainConfigSchema, 'test');
    const t = await LmTrainer.create(cfg);
    const before = await exactPosterior(t);
    let logZ = NaN;
    for (let i = 0; i < steps; i++) logZ = (await t.trainStep()).logZ;
    const r = await exactPosterior(t);
    console.log(
      `LoRA ${objective} CI posterior: TV ${before.tv.toFixed(4)} → ${r.tv.toFixed(4)}, log Z ${logZ.toFixed(3)} vs exact ${r.logZTrue.toFixed(3)}`,
    );
    assert.ok(Math.abs(r.policyMass - 1) < 1e-4);
    assert.ok(before.tv > 0.5, `the untrained policy is far from the posterior (TV ${before.tv})`);
    assert.ok(r.tv < 0.05, `TV ${r.tv}`);
    assert.ok(Math.abs(logZ - r.logZTrue) < 0.1, `log Z ${logZ} vs exact ${r.logZTrue}`);
  });
}

test('LoRA bad inputs: unknown target, rank ≤ 0 or above the layer → one line, exit 2', () => {
  const file = join(work, 'bad.yaml');
  writeFileSync(file, YAML.stringify(loraConfig('tb', 5)));
  const run = (...sets: string[]) =>
    spawnSync(
      process.execPath,
      [cli, 'train', '--config', file, '--out', join(work, `bad-${Math.random()}`), ...sets.flatMap((s) => ['--set', s])],
      { encoding: 'utf8' },
    );
  const expect = (r: ReturnType<typeof run>, re: RegExp) => {
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
  };
  expect(run('adapter.targets=[q_proj]'), /unknown module "q_proj" for gpt2; valid names: c_attn, c_proj, c_fc/);
  expect(run('adapter.rank=0'), /adapter\.rank/);
  expect(run('adapter.rank=33'), /adapter\.rank 33 exceeds .*1\.\.32/);
});

/**
 * Soft Q-learning through the LoRA seam: a stored transition holds its token prefix, so Q(s, ·)
 * recomputed from the buffer must equal the adapted model's logits at that node as TB sees them
 * (loraNodeLogits on the scored rows); the target clone starts equal and Polyak-averages factor by
 * factor; a short M-DQN run moves the factors and its checkpoint resumes to identical numbers.
 */
test('LoRA M-DQN: buffer states are token prefixes whose Q equals the node logits; clone + Polyak; resume is exact', async () => {
  const cfg = validate(loraConfig('mdqn', 6, { dqn: { replayBatch: 8, bufferSize: 200, polyak: 0.5 } }), trainConfigSchema, 'test');
  const t = await LmTrainer.create(cfg);
  const ad = t.adapter as LoraPolicyAdapter;
  for (let i = 0; i < 3; i++) await t.trainStep();
  // after training B ≠ 0: the check below would hold trivially for the base model otherwise
  assert.ok([...ad.lora.factors().values()].some((f) => f.b.some((v) => v !== 0)));
  const exs = [t.examples[0], t.examples[0], t.examples[0]];
  const zs = await sampleZ(
    t.samplingSession,
    t.tok,
    exs.map((e) => e.xIds),
    { constraints: t.constraints, temperature: 1, rng: new Rng(4) },
  );
  const rows = await scoreRows(
    t.session,
    exs.map((e) => e.xIds),
    zs,
    exs.map((e) => e.yIds),
    t.constraints,
    t.rewardSpec(),
    { prefix: false },
  );
  const viaRows = tf.tidy(() =>
    ad
      .logits(tf.zeros([1, 1]) as tf.Tensor2D, tf.zeros([1, 1]) as tf.Tensor2D, rows)
      .dataSync()
      .slice(),
  );
  const prefixes = rows.flatMap((r) => r.nodes.map((j) => [...r.tokens.x, ...r.tokens.z.slice(0, j)]));
  const viaPrefix = tf.tidy(() => ad.prefixLogits(prefixes).dataSync().slice());
  assert.equal(viaPrefix.length, viaRows.length);
  let worst = 0;
  for (let i = 0; i < viaRows.length; i++) worst = Math.max(worst, Math.abs(viaRows[i] - viaPrefix[i]));
  assert.ok(worst < 1e-4, `prefix Q vs node logits: ${worst}`);
  // Q through LoRA is the adapted logits minus the frozen log-normalizer of the state, so with
  // B = 0 the soft-Q values equal the head's at Q = log π̃ (ONNX base logits renormalized over the
  // allowed actions); the raw logits alone are off by that normalizer
  const fresh = ad.clone();
  fresh.lora.setFactors(new Map([...ad.lora.factors()].map(([n, f]) => [n, { a: f.a, b: new Float32Array(f.b.length) }])));
  const qOpts = { alpha: 0.15, l0: -100, huber: true, bufferSize: 100, perAlpha: 0.5, polyak: 0.05, replayBatch: 8 };
  const [d, V] = [t.session.hiddenSize, t.session.vocabSize];
  const qLora = new TokenSoftQ(fresh, d, V, qOpts),
    qHead = new TokenSoftQ(fresh.head, d, V, qOpts);
  qLora.addRows(rows);
  qHead.addRows(rows);
  const vHead = qHead.valueAtRoot(rows);
  assert.ok(Math.abs(qLora.valueAtRoot(rows) - vHead) < 1e-4, `LoRA V(s0) ${qLora.valueAtRoot(rows)} vs head ${vHead}`);
  assert.ok(Math.abs(rows[0].baseLogNorm[0]) > 0.01, 'the raw logits differ from log π̃ (else the check above is empty)');
  fresh.dispose();
  const target = ad.clone();
  const f0 = target.lora.factors();
  const src = ad.lora.factors();
  for (const [n, f] of src) assert.deepEqual(f0.get(n)!.b, f.b);
  // Polyak toward a source with doubled B: B ← 0.75·B + 0.25·2B = 1.25·B
  const twice = new Map([...src].map(([n, f]) => [n, { a: f.a, b: f.b.map((v) => 2 * v) }]));
  const other = ad.clone();
  other.lora.setFactors(twice);
  target.polyakFrom(other, 0.25);
  for (const [n, f] of target.lora.factors()) f.b.forEach((v, i) => assert.ok(Math.abs(v - 1.25 * src.get(n)!.b[i]) < 1e-6));
  target.dispose();
  other.dispose();
  // kill -9 / --resume: buffer of token prefixes, target factors and optimizer come back exactly
  let a = null;
  for (let i = 3; i < 6; i++) a = await t.trainStep();
  const cut = await LmTrainer.create(cfg);
  for (let i = 0; i < 3; i++) await cut.trainStep();
  const dir = join(work, 'resume-mdqn');
  cut.saveCheckpoint(dir);
  await cut.trainStep();
  const resumed = await LmTrainer.create(cfg);
  resumed.restore(dir);
  let b = null;
  while (resumed.step < 6) b = await resumed.trainStep();
  assert.equal(b!.loss, a!.loss);
  assert.equal(b!.logZ, a!.logZ);
});

test('nestPrefixes: one row per prefix that is no prefix of another, each read at the lengths it holds', () => {
  // hand-worked: [1,2,3] holds [1], [1,2] (twice) and itself; [4] stands alone
  const got = nestPrefixes([[1, 2], [1, 2, 3], [1], [4], [1, 2]]);
  assert.deepEqual(got.rows, [[1, 2, 3], [4]]);
  assert.deepEqual(got.reads, [[1, 2, 3], [1]]);
  assert.deepEqual(got.index, [1, 2, 0, 3, 1]);
});

test('CLI: a LoRA run trains, samples greedily with --temperature 0 (same Z every time), exports; export --peft of a head run is exit 2', () => {
  const file = join(work, 'cli.yaml');
  writeFileSync(file, YAML.stringify(loraConfig('tb', 4)));
  const cliRun = (...a: string[]) => spawnSync(process.execPath, [cli, ...a], { encoding: 'utf8' });
  const runDir = join(work, 'cli-run');
  const t = cliRun('train', '--config', file, '--out', runDir);
  assert.equal(t.status, 0, t.stderr);
  const s = cliRun('sample', '--run', runDir, '--x', 'The cat', '--y', ' sat.', '-n', '3', '--temperature', '0', '--json');
  assert.equal(s.status, 0, s.stderr);
  const rows = s.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.z === rows[0].z && r.logPF === rows[0].logPF && r.logPF <= 0));
  const out = join(work, 'cli-merged');
  assert.equal(cliRun('export', '--run', runDir, '--out', out).status, 0);
  const again = cliRun('export', '--run', runDir, '--out', out);
  assert.equal(again.status, 2);
  assert.match(again.stderr.trim(), /^flowtune: .*already exists/);
  const headFile = join(work, 'cli-head.yaml');
  writeFileSync(headFile, YAML.stringify(loraConfig('tb', 2, { adapter: { kind: 'head' } })));
  const headRun = join(work, 'cli-head');
  assert.equal(cliRun('train', '--config', headFile, '--out', headRun).status, 0);
  const peft = cliRun('export', '--run', headRun, '--out', join(work, 'cli-peft'), '--peft');
  assert.equal(peft.status, 2);
  assert.equal(peft.stderr.trim().split('\n').length, 1);
  assert.match(peft.stderr, /needs a LoRA run/);
});

/**
 * adapter.lr is the LoRA factors' learning rate. Adam's first step from B = 0 moves every
 * factor entry by lr·g/(|g| + ε) (bias-corrected moments m̂ = g, v̂ = g²), so the largest |B|
 * after one step is the learning rate in use, to within ε/|g|.
 */
test('adapter.lr sets the LoRA factors’ learning rate (first Adam step: max |B| = lr), optim.lr otherwise, dqn.lr under soft Q-learning', async () => {
  const maxB = async (adapter: Record<string, unknown>, objective = 'tb', dqn: Record<string, unknown> = {}) => {
    const base = loraConfig(objective, 1);
    const cfg = validate(
      { ...base, adapter: { ...base.adapter, ...adapter }, optim: { lr: 0.01, warmup: 0 }, dqn: { replayBatch: 16, ...dqn } },
      trainConfigSchema,
      'test',
    );
    const t = await LmTrainer.create(cfg);
    await t.trainStep();
    let m = 0;
    for (const f of (t.adapter as LoraPolicyAdapter).lora.factors().values()) m = Math.max(m, ...Array.from(f.b, Math.abs));
    return m;
  };
  const own = await maxB({ lr: 0.002 });
  assert.ok(own > 0.002 * 0.99 && own <= 0.002 * (1 + 1e-6), `max |B| with adapter.lr 0.002: ${own}`);
  const shared = await maxB({});
  assert.ok(shared > 0.01 * 0.99 && shared <= 0.01 * (1 + 1e-6), `max |B| with optim.lr 0.01: ${shared}`);
  // soft Q-learning's own rate (dqn.lr) wins over adapter.lr; a GFlowNet objective ignores it
  const softQ = await maxB({ lr: 0.002 }, 'mdqn', { lr: 0.004 });
  assert.ok(softQ > 0.004 * 0.99 && softQ <= 0.004 * (1 + 1e-6), `max |B| of M-DQN with dqn.lr 0.004: ${softQ}`);
  const tbIgnores = await maxB({ lr: 0.002 }, 'tb', { lr: 0.004 });
  assert.ok(tbIgnores > 0.002 * 0.99 && tbIgnores <= 0.002 * (1 + 1e-6), `max |B| of TB with dqn.lr set: ${tbIgnores}`);
});
