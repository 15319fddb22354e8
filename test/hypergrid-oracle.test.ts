import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hypergrid } from '../src/envs/hypergrid.js';
import { hypergridLogZ } from '../src/envs/hypergrid-oracle.js';
import { buildDag, flowOracle, softValueIteration, targetDistribution, terminalDistribution } from '../src/gfn/exact.js';
import { verifyTheorem } from '../src/softrl/theorem.js';
import { Rng } from '../src/core/rng.js';
import { logSumExp } from '../src/core/math.js';

const Z = (ndim: number, height: number, reward: 'standard' | 'hard' = 'standard') => Math.exp(hypergridLogZ({ ndim, height, reward }));

test('partition functions match the published constants (docs/design.md §5)', () => {
  assert.ok(Math.abs(Z(3, 8) - 48.512) < 1e-9);
  assert.ok(Math.abs(Z(4, 8) - 164.096) < 1e-9);
  assert.ok(Math.abs(Z(4, 20) - 5672) < 1e-7);
  assert.ok(Math.abs(Z(4, 20, 'hard') - 10784) < 1e-7);
  assert.ok(Math.abs(hypergridLogZ({ ndim: 4, height: 20, reward: 'standard' }) - 8.6433) < 1e-4);
});

test('closed form, brute-force sum of rewards and the flow recursion agree', () => {
  for (const [ndim, height, reward] of [
    [3, 8, 'standard'],
    [4, 8, 'standard'],
    [2, 20, 'hard'],
  ] as const) {
    const env = new Hypergrid({ ndim, height, reward });
    const dag = buildDag(env);
    const bruteLogZ = logSumExp(dag.logR);
    assert.ok(Math.abs(bruteLogZ - hypergridLogZ(env.config)) < 1e-12);
    assert.ok(Math.abs(flowOracle(dag).logZ - bruteLogZ) < 1e-12);
  }
});

test('theorem (M): V* = log F, Q* = log F(s→s′), softmax(Q*) samples R/Z, value identity', () => {
  for (const cfg of [
    { ndim: 3, height: 8, reward: 'standard' as const },
    { ndim: 2, height: 20, reward: 'hard' as const },
  ]) {
    const r = verifyTheorem(new Hypergrid(cfg), { policies: 4, seed: 1 });
    assert.ok(r.maxAbsVMinusLogF < 1e-9);
    assert.ok(r.maxAbsQMinusLogEdgeFlow < 1e-9);
    assert.ok(r.tvSoftOptimal < 1e-9, `TV of softmax(Q*)'s terminal distribution from R/Z: ${r.tvSoftOptimal}`);
    assert.ok(r.valueIdentityMaxError < 1e-9);
    assert.ok(r.minKlGap >= -1e-12, 'KL over trajectories bounds KL over objects');
    assert.ok(Math.abs(r.logZSoftValue - hypergridLogZ(cfg)) < 1e-9);
    assert.ok(r.sweeps <= cfg.ndim * (cfg.height - 1) + 3, 'VI on a DAG ends after depth + 1 sweeps');
  }
});

test('forward DP equals explicit enumeration of all trajectories (random policy, 2-D H=4)', () => {
  const env = new Hypergrid({ ndim: 2, height: 4, reward: 'standard' });
  const dag = buildDag(env);
  const rng = new Rng(5);
  const A = dag.nActions;
  const logPi = new Float64Array(dag.numStates * A);
  for (let s = 0; s < dag.numStates; s++) {
    let z = 0;
    const w: number[] = [];
    for (let a = 0; a < A; a++) {
      w.push(dag.mask[s * A + a] ? rng.uniform() + 0.05 : 0);
      z += w[a];
    }
    for (let a = 0; a < A; a++) logPi[s * A + a] = Math.log(w[a] / z);
  }
  const byPaths = new Float64Array(dag.numStates);
  const walk = (s: number, p: number) => {
    for (let a = 0; a < A; a++) {
      if (!dag.mask[s * A + a]) continue;
      const q = p * Math.exp(logPi[s * A + a]);
      if (a === dag.exitAction) byPaths[s] += q;
      else walk(dag.child[s * A + a], q);
    }
  };
  walk(0, 1);
  const dp = terminalDistribution(dag, logPi);
  for (let s = 0; s < dag.numStates; s++)
    assert.ok(
      Math.abs(dp[s] - byPaths[s]) < 1e-14,
      `terminal probability P_T(x${s}): forward DP ${dp[s]} vs path enumeration ${byPaths[s]}`,
    );
  assert.ok(Math.abs(dp.reduce((x, y) => x + y, 0) - 1) < 1e-12, 'terminal probabilities P_T sum to 1');
});

test('soft value iteration from V ≡ 0 and the flow oracle are computed independently', () => {
  const env = new Hypergrid({ ndim: 2, height: 5, reward: 'hard' });
  const dag = buildDag(env);
  const one = softValueIteration(dag, 0, 1); // a single sweep is not yet converged
  const full = softValueIteration(dag);
  assert.ok(Math.abs(one.V[0] - full.V[0]) > 1e-3);
  assert.ok(Math.abs(full.V[0] - flowOracle(dag).logZ) < 1e-12);
  const pT = terminalDistribution(dag, flowOracle(dag).logPF);
  const target = targetDistribution(dag);
  for (let s = 0; s < dag.numStates; s++)
    assert.ok(Math.abs(pT[s] - target[s]) < 1e-12, `terminal probability P_T(x${s}) of P_F* ${pT[s]} vs R/Z ${target[s]}`);
});

test('hypergrid env: masks, steps, reward shape, bad sizes', () => {
  const env = new Hypergrid({ ndim: 2, height: 3, reward: 'standard' });
  const s = new Int32Array([2, 0]);
  const m = new Uint8Array(3);
  env.forwardMask(s, 1, m);
  assert.deepEqual([...m], [0, 1, 1]);
  const bm = new Uint8Array(2);
  env.backwardMask(s, 1, bm);
  assert.deepEqual([...bm], [1, 0]);
  env.step(s, new Int32Array([1]), 1, s);
  assert.deepEqual([...s], [2, 1]);
  assert.throws(() => env.step(s, new Int32Array([0]), 1, s));
  const lr = new Float64Array(1);
  env.logReward(new Int32Array([0, 0]), 1, lr);
  assert.ok(Math.abs(lr[0] - Math.log(1e-3 + 0.5)) < 1e-12); // corner: outer band, not the ring (H=3)
  assert.throws(() => new Hypergrid({ ndim: 2, height: 1, reward: 'standard' }), /height/);
});
