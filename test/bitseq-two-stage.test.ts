import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitseq } from '../src/envs/bitseq.js';
import { BITSEQ_BENCH_DEFAULTS } from '../src/benchmarks/bitseq.js';
import { buildTrainer } from '../src/benchmarks/build-trainer.js';
import { buildDag, flowOracle, targetDistribution, terminalDistribution, totalVariation } from '../src/gfn/exact.js';
import { policyOnDag } from '../src/gfn/evaluate.js';
import { sampleTwoStage, TwoStagePolicy, twoStageSpecs } from '../src/gfn/two-stage.js';
import { createNet } from '../src/nn/factory.js';
import { estimateLogProb } from '../src/metrics/logprob.js';
import { UsageError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// n = 8 bits in L = 4 slots of k = 2: 625 states, 256 objects — the exact oracles enumerate it.
const tiny = { n: 8, k: 2, nModes: 3, beta: 1, seed: 7 };

/** A two-stage policy on the tiny env with its random init scaled up, so both stages are far from uniform. */
async function sharpPolicy(env: Bitseq, seed: number, scale = 5): Promise<TwoStagePolicy> {
  const specs = twoStageSpecs(env, [32]);
  const p = new TwoStagePolicy(env, await createNet('fused', specs.slot, seed), await createNet('fused', specs.word, seed + 1));
  for (const net of [p.slotNet, p.wordNet]) net.setParams(net.getParams().map((v) => v * scale));
  return p;
}

/** log softmax of xs at i, plain loops (no project numerics). */
function logSoftmax(xs: number[], i: number): number {
  const m = Math.max(...xs);
  return xs[i] - m - Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

test('two-stage rollout: stored log P_F = log softmax(slot logits) + log softmax(word logits of that slot), recomputed net by net', async () => {
  const env = new Bitseq(tiny);
  const policy = await sharpPolicy(env, 3);
  const B = 24,
    L = env.slots,
    V = env.values,
    T = env.maxSteps;
  const ro = sampleTwoStage(policy, B, new Rng(5), { epsilon: 0, temperature: 1 }, { record: false, learnedPB: false });
  const slotOut = new Float32Array(policy.slotNet.spec.outputDim);
  const wordOut = new Float32Array(V);
  let checked = 0;
  for (let b = 0; b < B; b++) {
    assert.equal(ro.batch.lengths[b], L + 1, 'L fills, then exit');
    const s = new Int32Array(L).fill(-1);
    for (let t = 0; t <= L; t++) {
      // the state's one-hot indices, straight from the encoding's definition: slot j ↦ j·(V + 1) + value + 1
      const idx = Int32Array.from(s, (v, j) => j * (V + 1) + v + 1);
      policy.slotNet.forward(idx, 1, slotOut, false);
      const open = [...Array(L).keys()].filter((j) => s[j] < 0);
      const a = ro.actions[b * T + t];
      let want: number;
      if (t === L) {
        assert.equal(a, env.exitAction);
        want = 0; // exit is the only allowed choice at a complete string
      } else {
        const j = Math.floor(a / V),
          w = a % V;
        assert.ok(open.includes(j), `slot ${j} was open`);
        const slotLogits = open.map((q) => slotOut[q]);
        const lpSlot = logSoftmax(slotLogits, open.indexOf(j));
        policy.wordNet.forward(Int32Array.from([...idx, env.inputDim + j]), 1, wordOut, false);
        want = lpSlot + logSoftmax(Array.from(wordOut), w);
        // P_B uniform over the filled slots of the child: t + 1 of them
        assert.ok(Math.abs(ro.batch.logPB[b * T + t] + Math.log(t + 1)) < 1e-12);
        s[j] = w;
      }
      assert.ok(Math.abs(ro.batch.logPF[b * T + t] - want) < 1e-6, `traj ${b} step ${t}: ${ro.batch.logPF[b * T + t]} vs ${want}`);
      checked++;
    }
    assert.deepEqual(Array.from(ro.terminals.subarray(b * L, (b + 1) * L)), Array.from(s));
  }
  assert.equal(checked, B * (L + 1));
  policy.dispose();
});

/** χ² of observed counts against expected probabilities, cells with expected count < 5 pooled. */
function chiSquare(counts: Float64Array, p: Float64Array, N: number): { stat: number; dof: number } {
  let stat = 0,
    dof = -1,
    poolO = 0,
    poolE = 0;
  for (let i = 0; i < p.length; i++) {
    const e = N * p[i];
    if (e < 5) {
      poolO += counts[i];
      poolE += e;
      continue;
    }
    stat += (counts[i] - e) ** 2 / e;
    dof++;
  }
  if (poolE > 0) (stat += (poolO - poolE) ** 2 / poolE), dof++;
  return { stat, dof };
}

async function samplingMatchesExact(epsilon: number): Promise<void> {
  const env = new Bitseq(tiny);
  const dag = buildDag(env);
  const policy = await sharpPolicy(env, 11);
  const A = dag.nActions;
  const logPF = policyOnDag(env, policy, dag);
  // property: every reachable row of the full two-stage policy is normalized
  for (let s = 0; s < dag.numStates; s++) {
    let z = 0;
    for (let a = 0; a < A; a++) z += Math.exp(logPF[s * A + a]);
    assert.ok(Math.abs(z - 1) < 1e-6, `state ${s}: Σ P_F = ${z}`);
  }
  // exact law of the sampler: per step (1 − ε)·P_F + ε·uniform over the allowed joint actions
  const mixed = new Float64Array(dag.numStates * A);
  for (let s = 0; s < dag.numStates; s++) {
    let allowed = 0;
    for (let a = 0; a < A; a++) allowed += dag.mask[s * A + a];
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      mixed[e] = dag.mask[e] ? Math.log((1 - epsilon) * Math.exp(logPF[e]) + epsilon / allowed) : -Infinity;
    }
  }
  const pT = terminalDistribution(dag, mixed);
  const rng = new Rng(2024);
  const counts = new Float64Array(dag.numStates);
  const N = 40_000,
    B = 1000;
  for (let done = 0; done < N; done += B) {
    const ro = sampleTwoStage(policy, B, rng, { epsilon, temperature: 1 }, { record: false, learnedPB: false });
    for (let b = 0; b < B; b++) counts[env.indexOf(ro.terminals, b)]++;
  }
  const { stat, dof } = chiSquare(counts, pT, N);
  // χ²_dof has mean dof and s.d. √(2·dof): 5 s.d. above the mean fails a correct sampler with p < 1e-5
  assert.ok(dof > 50, `enough cells (${dof})`);
  assert.ok(stat < dof + 5 * Math.sqrt(2 * dof), `ε = ${epsilon}: χ² ${stat.toFixed(1)} on ${dof} d.o.f.`);
  const empirical = counts.map((c) => c / N);
  assert.ok(totalVariation(empirical, pT) < 0.05, `TV(empirical, exact) ${totalVariation(empirical, pT)}`);
  policy.dispose();
}

test('two-stage sampling frequencies match the exact terminal distribution (χ², 40k samples)', async () => {
  await samplingMatchesExact(0);
});

test('ε-exploration is uniform over the allowed joint actions: frequencies match the exact mixed law', async () => {
  await samplingMatchesExact(0.5);
  // ε = 1: every step uniform over (open slot, word) pairs, so every string has probability 2^−n
  const env = new Bitseq(tiny);
  const policy = await sharpPolicy(env, 13);
  const counts = new Float64Array(2 ** env.n);
  const ro = sampleTwoStage(policy, 25_600, new Rng(3), { epsilon: 1, temperature: 1 }, { record: false, learnedPB: false });
  const bits = new Uint8Array(env.n);
  for (let b = 0; b < 25_600; b++) {
    env.bitsOf(ro.terminals, b, bits);
    counts[bits.reduce((x, v) => 2 * x + v, 0)]++;
  }
  const { stat, dof } = chiSquare(counts, new Float64Array(2 ** env.n).fill(2 ** -env.n), 25_600);
  assert.equal(dof, 255);
  assert.ok(stat < dof + 5 * Math.sqrt(2 * dof), `ε = 1: χ² ${stat.toFixed(1)} on ${dof} d.o.f.`);
  policy.dispose();
});

test('log P̂_θ of a two-stage policy matches its exact terminal probability', async () => {
  const env = new Bitseq(tiny);
  const dag = buildDag(env);
  const policy = await sharpPolicy(env, 17, 3); // milder than the others: the estimator's variance grows with the spread over orders
  for (const temperature of [1, 1.5]) {
    const pT = terminalDistribution(dag, policyOnDag(env, policy, dag, temperature));
    const rows = [dag.numStates - 1, dag.numStates - 40, dag.numStates - 200];
    const xs = new Int32Array(rows.length * env.slots);
    rows.forEach((r, i) => xs.set(dag.states.subarray(r * env.slots, (r + 1) * env.slots), i * env.slots));
    const est = estimateLogProb(env, policy, xs, rows.length, 4000, new Rng(9), temperature, 1000);
    rows.forEach((r, i) => assert.ok(Math.abs(est[i] - Math.log(pT[r])) < 0.03, `T=${temperature} x${i}: ${est[i]} vs ${Math.log(pT[r])}`));
  }
  policy.dispose();
});

const train = { ...BITSEQ_BENCH_DEFAULTS, head: 'two-stage' as const, hidden: [64, 64] };

test('TB with the two-stage head learns the tiny bitseq: exact TV of the sampler < 0.04', async () => {
  const env = new Bitseq(tiny);
  const dag = buildDag(env);
  const target = targetDistribution(dag);
  const t = await buildTrainer(env, { ...train, algo: 'tb', iterations: 2000 }, new Rng(1));
  const tv0 = totalVariation(terminalDistribution(dag, policyOnDag(env, t.net, dag)), target);
  for (let i = 0; i < 2000; i++) t.step();
  const tv = totalVariation(terminalDistribution(dag, policyOnDag(env, t.net, dag)), target);
  assert.ok(tv < 0.04 && tv < tv0 / 5, `TV ${tv0} → ${tv}`);
  t.dispose();
});

test('DB with a learned P_B and SubTB train the two-stage head on the tiny bitseq (flow and P_B gradients)', async () => {
  const env = new Bitseq(tiny);
  const dag = buildDag(env);
  const target = targetDistribution(dag);
  for (const [algo, learnedPB, bound] of [
    ['db', true, 0.06],
    ['subtb', false, 0.06],
  ] as const) {
    const t = await buildTrainer(env, { ...train, algo, learnedPB, iterations: 1500 }, new Rng(2));
    const tv0 = totalVariation(terminalDistribution(dag, policyOnDag(env, t.net, dag)), target);
    for (let i = 0; i < 1500; i++) t.step();
    const tv = totalVariation(terminalDistribution(dag, policyOnDag(env, t.net, dag)), target);
    assert.ok(tv < bound && tv < tv0 / 3, `${algo}: TV ${tv0} → ${tv}`);
    // DB/SubTB's log Z estimate is log F(s0), the slot net's flow output
    const logZ = flowOracle(dag).logZ;
    assert.ok(Math.abs(t.logZ() - logZ) < 0.1, `${algo}: log F(s0) ${t.logZ()} vs log Z ${logZ}`);
    t.dispose();
  }
});

test('the two-stage head refuses soft-RL objectives with a usage error', async () => {
  const env = new Bitseq(tiny);
  await assert.rejects(buildTrainer(env, { ...train, algo: 'mdqn', iterations: 1 }, new Rng(0)), UsageError);
});

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('flowtune bench bitseq: two-stage is the default for TB from k = 8; --head two-stage with M-DQN is a usage error', () => {
  const r = run('bench', 'bitseq', '--algo', 'tb', '-n', '16', '--k', '8', '--modes', '2', '--iterations', '3', '--orders', '1', '--json');
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(s.head, 'two-stage');
  assert.equal(s.iterations, 3);
  assert.ok(Number.isFinite(s.spearman));
  const k4 = run('bench', 'bitseq', '--algo', 'tb', '-n', '16', '--k', '4', '--modes', '2', '--iterations', '2', '--orders', '1', '--json');
  assert.equal(JSON.parse(k4.stdout.trim().split('\n').pop()!).head, 'dense');
  const bad = run('bench', 'bitseq', '--algo', 'mdqn', '--k', '8', '--head', 'two-stage', '--iterations', '1');
  assert.equal(bad.status, 2, bad.stderr);
  const lines = bad.stderr.trim().split('\n');
  assert.equal(lines.length, 1, bad.stderr);
  assert.match(lines[0], /^flowtune: --head two-stage supports tb, db and subtb/);
});
