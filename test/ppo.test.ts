import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf, selectBackend } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { logSumExp } from '../src/core/math.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { pairsConfig as sharedPairsConfig } from './helpers/pairs-config.js';
import { FineTuneSetup } from '../src/finetune/setup.js';
import { scoreRows } from '../src/finetune/score.js';
import { sequenceLogProbs } from '../src/finetune/posterior.js';
import { sampleZ, type ZSample } from '../src/finetune/rollout.js';
import { disposeNodes, stackNodes } from '../src/finetune/nodes.js';
import { clippedSurrogate, groupAdvantages, klToBase, nodeLogProbs, PpoBaseline, ppoGrads, spreadRows } from '../src/baselines/ppo.js';
import type { NodeTensors } from '../src/finetune/nodes.js';
import { reinforceGrads } from '../src/baselines/reinforce.js';

const model = writeTempModel(5, { nCtx: 128 }, {}, 2);
after(() => model.cleanup());

test('clipped surrogate: hand-worked value and gradient on 2 samples (ε = 0.2)', async () => {
  await selectBackend();
  // sample 1 (A = +1): ratios 1.4 (clipped to 1.2, no gradient) and 0.9 (unclipped)
  // sample 2 (A = −2): ratios 0.7 (min(−1.4, −1.6) = −1.6: clipped, no gradient) and 1.1 (unclipped)
  const ratios = [1.4, 0.9, 0.7, 1.1];
  const adv = [1, 1, -2, -2];
  const old = [Math.log(0.5), Math.log(0.5), Math.log(0.4), Math.log(0.3)];
  const lpNew = ratios.map((r, i) => old[i] + Math.log(r));
  const oldT = tf.tensor1d(old),
    advT = tf.tensor1d(adv);
  const f = (lp: tf.Tensor) => clippedSurrogate(lp as tf.Tensor1D, oldT, advT, 0.2, 2);
  const x = tf.tensor1d(lpNew);
  const value = f(x).dataSync()[0];
  // L = −(1/2)(1.2 + 0.9 − 1.6 − 2.2) = 0.85
  assert.ok(Math.abs(value - 0.85) < 1e-5, `L = ${value}`);
  // dL/d log π_new = −(1/2)·ρ·A where the unclipped branch is the min, else 0
  const g = Array.from(tf.grad(f)(x).dataSync());
  const want = [0, -0.45, 0, 1.1];
  g.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `grad[${i}] = ${v}, want ${want[i]}`));
  tf.dispose([oldT, advT, x]);
});

test('KL penalty: β Σ_nodes KL(π ‖ π_0) / rows, by hand, with a masked action contributing 0', async () => {
  await selectBackend();
  // π = (½, ½, 0), π_0 ∝ (1, 3, ·) on the allowed actions: KL = ½ ln 2 + ½ ln(2/3)
  const logp = tf.tensor2d([[Math.log(0.5), Math.log(0.5), -1e9]]);
  const nodes = { rows: [{}], base: tf.tensor2d([[0, Math.log(3), 5]]), negMask: tf.tensor2d([[0, 0, -1e9]]) } as unknown as NodeTensors;
  const v = klToBase(logp, nodes, 2).dataSync()[0];
  const want = 2 * (0.5 * Math.log(2) + 0.5 * Math.log(2 / 3));
  assert.ok(Math.abs(v - want) < 1e-5, `β·KL ${v} vs ${want}`);
  tf.dispose([logp, nodes.base, nodes.negMask]);
});

test('group baseline: each reward minus the mean of its group', () => {
  assert.deepEqual(groupAdvantages([1, 3, 10, 20], 2), [-1, 1, -5, 5]);
  assert.deepEqual(groupAdvantages([1, 3, 10, 20], 4), [-7.5, -5.5, 1.5, 11.5]);
  assert.throws(() => groupAdvantages([1, 2, 3], 2));
});

/** An enumerable task (341 Z over 4 tokens, |Z| ≤ 4) on the tiny random model, 40 steps. */
const pairsConfig = (over: Record<string, unknown> = {}) => sharedPairsConfig(model.dir, { train: { steps: 40, batchSize: 16 }, ...over });

test('PPO at ratio 1 with β = 0 and one group has exactly the REINFORCE-with-baseline gradient', async () => {
  const t = await FineTuneSetup.create(pairsConfig());
  // move the head off B = 0 so that every parameter gets a gradient
  const rng = new Rng(3);
  for (const v of t.adapter.policyVariables())
    v.assign(
      tf.tensor(
        Float32Array.from({ length: v.size }, () => 0.3 * rng.normal()),
        v.shape,
      ),
    );
  const ex = t.examples[0];
  const B = 6;
  const zs = await sampleZ(t.session, t.tok, new Array(B).fill(ex.xIds), {
    constraints: t.constraints,
    temperature: 1,
    policy: t.adapter.policy(),
    rng,
  });
  const rows = await scoreRows(t.session, new Array(B).fill(ex.xIds), zs, new Array(B).fill(ex.yIds), t.constraints, t.rewardSpec(), {
    prefix: false,
  });
  assert.ok(new Set(rows.map((r) => r.logR)).size > 1, 'the batch has distinct rewards');
  const nodes = stackNodes(rows, t.session.hiddenSize, t.session.vocabSize, t.constraints.stopId);
  const vars = t.adapter.policyVariables();
  try {
    const lp = nodeLogProbs(t.adapter, nodes);
    const adv = spreadRows(
      groupAdvantages(
        rows.map((r) => r.logR),
        B,
      ),
      nodes,
    );
    const ppo = ppoGrads(t.adapter, nodes, lp.policy, adv, 0.2, vars);
    const rf = reinforceGrads(t.adapter, nodes, adv, vars);
    assert.equal(ppo.clipped, 0);
    let norm = 0;
    for (const v of vars) {
      const a = ppo.grads.get(v)!.dataSync(),
        b = rf.grads.get(v)!.dataSync();
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * (1 + Math.abs(b[i])), `${v.name}[${i}]: PPO ${a[i]} vs REINFORCE ${b[i]}`);
        norm += b[i] * b[i];
      }
    }
    assert.ok(norm > 1e-6, `a non-zero gradient (‖g‖² ${norm})`);
    // at ratio 1 the surrogate's value is −(1/B) Σ A · (number of tokens): the advantages sum to 0 per group, so not in general 0
    const want = -rows.reduce((s, r, b) => s + adv[nodes.first[b]] * r.nodes.length, 0) / B;
    assert.ok(Math.abs(ppo.loss - want) < 1e-4, `surrogate ${ppo.loss} vs ${want}`);
    tf.dispose([...ppo.grads.values(), ...rf.grads.values()]);
  } finally {
    disposeNodes(nodes);
  }
});

async function expectedLogR(t: FineTuneSetup): Promise<{ expLogR: number; kl: number }> {
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
  const dims = { d: t.session.hiddenSize, V: t.session.vocabSize, stop: t.constraints.stopId };
  const lp = sequenceLogProbs(rows, dims, (h, b) => t.adapter.logits(h, b), 1);
  const lp0 = sequenceLogProbs(rows, dims, (_h, b) => b, 1);
  assert.ok(Math.abs(logSumExp(lp)) < 1e-3, 'the policy sums to 1 over every Z');
  let expLogR = 0,
    kl = 0;
  rows.forEach((r, k) => {
    expLogR += Math.exp(lp[k]) * r.logR;
    kl += Math.exp(lp[k]) * (lp[k] - lp0[k]);
  });
  return { expLogR, kl };
}

test('PPO raises E_π[log R] over all 341 Z; a large KL coefficient keeps π close to the base LM', async (tc) => {
  const free = await FineTuneSetup.create(pairsConfig());
  const start = await expectedLogR(free);
  const ppo = new PpoBaseline(free, { klCoef: 0 });
  for (let i = 0; i < 40; i++) await ppo.trainStep();
  const end = await expectedLogR(free);
  assert.ok(end.expLogR > start.expLogR + 1, `E[log R] ${start.expLogR} → ${end.expLogR}`);
  assert.ok(Math.abs(start.kl) < 1e-4, 'the head starts at the base LM');

  const tied = await FineTuneSetup.create(pairsConfig());
  const ppoKl = new PpoBaseline(tied, { klCoef: 20 });
  for (let i = 0; i < 40; i++) await ppoKl.trainStep();
  const endKl = await expectedLogR(tied);
  assert.ok(endKl.kl < end.kl / 4, `KL(π ‖ π_0): β = 20 → ${endKl.kl}, β = 0 → ${end.kl}`);
  tc.diagnostic(
    `E[log R] ${start.expLogR.toFixed(3)} → ${end.expLogR.toFixed(3)} (β = 0, KL ${end.kl.toFixed(3)}); β = 20: E[log R] ${endKl.expLogR.toFixed(3)}, KL ${endKl.kl.toFixed(4)}`,
  );
  assert.throws(() => new PpoBaseline(tied, { groupSize: 5 }), /must divide/);
});
