import { test } from 'node:test';
import assert from 'node:assert/strict';
import { munchausenBonus, softValue, tdLoss } from '../src/softrl/targets.js';
import { buildTrainer, REFERENCE_TRAINER_DEFAULTS } from '../src/benchmarks/build-trainer.js';
import { Hypergrid } from '../src/envs/hypergrid.js';
import { Rng } from '../src/core/rng.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';
import { samplingTemperature as policyTemperature } from '../src/finetune/objectives/index.js';

// The soft-RL bootstrap pieces of docs/design.md eq. (SQ) / (MQ), checked on numbers worked by
// hand. These tests use only the exported functions' inputs and outputs, so they hold for
// any learner (hypergrid MLP or LM head) built on them.

const { exp, log } = Math;
const close = (got: number, want: number, what: string, tol = 1e-12) =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);
const all = (n: number) => new Uint8Array(n).fill(1);

test('soft value τ·log Σ_a exp(Q(a)/τ) without a mask', () => {
  // log(e + e² + e³) = 3 + log(1 + e⁻¹ + e⁻²) = 3.40760596444438
  close(softValue([1, 2, 3], 0, all(3), 0, 3, 1), 3.40760596444438, 'soft value V(s), τ = 1');
  // τ = 2: 2·log(e^0.5 + e^1 + e^1.5) = 2·(1.5 + log(1 + e^-0.5 + e^-1)) = 2·(1.5 + log 1.97441) = 4.36053934128347
  close(softValue([1, 2, 3], 0, all(3), 0, 3, 2), 4.36053934128347, 'soft value V(s), τ = 2', 1e-11);
  // two equal values: V = Q + τ log 2 — logsumexp, not max (max would give 1000)
  close(softValue([1000, 1000], 0, all(2), 0, 2, 1), 1000 + log(2), 'soft value V(s) of two equal large Q (logsumexp, not max)', 1e-9);
  close(softValue([0, 0, 0, 0], 0, all(4), 0, 4, 0.5), 0.5 * log(4), 'soft value V(s) of four zeros, τ = ½');
  // the shift by the max is what keeps it finite: e^1000 overflows, so a wrong shift gives ∞
  close(softValue([1000, 1], 0, all(2), 0, 2, 1), 1000, 'soft value V(s) with Q = [1000, 1] (max shift)', 1e-9);
  close(softValue([10, 10], 0, all(2), 0, 2, 0.01), 10 + 0.01 * log(2), 'soft value V(s) with τ = 0.01 (shift by max Q/τ)', 1e-9);
  // a row of a batch reads only its own A entries: row 0 of [[0, log 3], [1e4, 1e4]] is log 4
  close(softValue([0, log(3), 1e4, 1e4], 0, all(4), 0, 2, 1), log(4), 'soft value V(s) of row 0 of a batch (next row not read)');
  // offsets into a batch row: row 1 of [[9, 9], [0, log 3]] is log(1 + 3) = log 4
  close(softValue([9, 9, 0, log(3)], 2, [0, 0, 1, 1], 2, 2, 1), log(4), 'soft value V(s) at a row offset');
});

test('soft value with a mask: only the allowed actions count', () => {
  close(softValue([1, 2, 3], 0, [1, 0, 1], 0, 3, 1), log(exp(1) + exp(3)), 'masked soft value V(s) (middle action off)');
  close(softValue([1, 2, 3], 0, [0, 0, 1], 0, 3, 1), 3, 'masked soft value V(s) with one allowed action');
  close(softValue([1, 2, 3], 0, [0, 0, 1], 0, 3, 5), 3, 'one allowed action: V = Q for any τ');
  // a huge disallowed Q must not enter the max either (it would underflow the sum to 0)
  close(softValue([1, 2, 1e4], 0, [1, 1, 0], 0, 3, 1), log(exp(1) + exp(2)), 'masked soft value V(s) with a huge disallowed Q');
  // mask offset differs from the Q offset
  close(softValue([0, log(3), 7], 0, [0, 0, 1, 1, 0], 2, 3, 1), log(4), 'masked soft value V(s) with a mask offset');
});

test('Munchausen bonus α·clip(τ log π(a|s), l0, 0): clip inactive and active', () => {
  // Q = [0, log 3], τ = 1: π = [¼, ¾]
  const q = [0, log(3)];
  close(munchausenBonus(q, 0, all(2), 0, 2, 0, 1, 0.9, -2.5), 0.9 * log(0.25), 'Munchausen bonus, clip inactive (log ¼ > l0)');
  close(munchausenBonus(q, 0, all(2), 0, 2, 1, 1, 0.9, -2.5), 0.9 * log(0.75), 'Munchausen bonus of the likelier action');
  close(munchausenBonus(q, 0, all(2), 0, 2, 0, 1, 0.9, -1), -0.9, 'Munchausen bonus, l0 clip active (log ¼ < l0 = −1)');
  close(munchausenBonus(q, 0, all(2), 0, 2, 1, 1, 0.9, -1), 0.9 * log(0.75), 'Munchausen bonus above l0 is unclipped');
  // τ = 2, Q = [0, 2 log 3]: π = softmax(Q/τ) = [¼, ¾], τ log π(0) = 2 log ¼ = −2.77
  const q2 = [0, 2 * log(3)];
  close(munchausenBonus(q2, 0, all(2), 0, 2, 0, 2, 0.5, -5), 0.5 * 2 * log(0.25), 'Munchausen bonus with τ = 2, clip inactive');
  close(munchausenBonus(q2, 0, all(2), 0, 2, 0, 2, 0.5, -2), 0.5 * -2, 'Munchausen bonus with τ = 2, clip active');
  // a masked third action does not change π; α = 0 gives no bonus
  close(munchausenBonus([0, log(3), 50], 0, [1, 1, 0], 0, 3, 0, 1, 0.9, -2.5), 0.9 * log(0.25), 'Munchausen bonus with a masked action');
  close(munchausenBonus(q, 0, all(2), 0, 2, 0, 1, 0, -2.5), 0, 'Munchausen bonus with α = 0');
  // a sure action: log π = 0, bonus 0
  close(munchausenBonus([5, 2], 0, [1, 0], 0, 2, 0, 1, 0.9, -1), 0, 'Munchausen bonus of the only allowed action');
});

test('Huber and squared TD loss in both branches, with their derivatives', () => {
  const cases: [number, boolean, number, number][] = [
    [0.5, true, 0.125, 0.5], // |δ| ≤ 1: ½δ²
    [-0.5, true, 0.125, -0.5],
    [1, true, 0.5, 1], // the branches meet at |δ| = 1
    [3, true, 2.5, 1], // |δ| > 1: |δ| − ½
    [-3, true, 2.5, -1],
    [3, false, 4.5, 3], // squared: ½δ², δ
    [-3, false, 4.5, -3],
    [0, true, 0, 0],
  ];
  for (const [d, huber, loss, grad] of cases) {
    const r = tdLoss(d, huber);
    close(r.loss, loss, `TD loss of δ = ${d} (huber ${huber})`);
    close(r.grad, grad, `TD loss gradient of δ = ${d} (huber ${huber})`);
  }
});

/**
 * A two-state MDP: s0 --a0--> s1 (reward 0), s0 --a1--> exit (reward log R(s0) = 0),
 * s1 --exit--> (reward log R(s1) = log 3). Soft Bellman by hand (τ = 1): V(s1) = log 3,
 * Q(s0) = [log 3, 0], V(s0) = log(3 + 1) = log 4 = log Z, and π(a0|s0) = 3/4 = R(s1)/Z.
 */
const TRANSITIONS = [
  { s: 0, a: 0, r: 0, next: 1 },
  { s: 0, a: 1, r: 0, next: -1 },
  { s: 1, a: 0, r: log(3), next: -1 },
];
const MASKS = [
  [1, 1],
  [1, 0],
]; // s1 only exits

/** Targets y = r + V(s') + Munchausen bonus for each transition, from the exported pieces. */
function targets(Q: number[][], alpha: number, l0: number): number[] {
  const tau = 1 / (1 - alpha);
  return TRANSITIONS.map(({ s, a, r, next }) => {
    let y = r;
    if (next >= 0) y += softValue(Q[next], 0, MASKS[next], 0, 2, tau);
    if (alpha > 0) y += munchausenBonus(Q[s], 0, MASKS[s], 0, 2, a, tau, alpha, l0);
    return y;
  });
}

test('TD loss on a two-state MDP worked by hand', () => {
  // Q(s0) = [1, 0.5], Q(s1) = [0.2, —]. Targets: y(s0,a0) = 0 + V(s1) = 0.2, y(s0,a1) = 0,
  // y(s1,exit) = log 3. TD errors 0.8, 0.5, 0.2 − log 3 = −0.898612; mean ½δ² = (0.64 + 0.25 + 0.80750)/6 = 0.28292
  const Q = [
    [1, 0.5],
    [0.2, -7],
  ];
  const y = targets(Q, 0, -100);
  close(y[0], 0.2, 'TD target y(s0, a0) = V(s1)');
  close(y[1], 0, 'TD target y(s0, a1)');
  close(y[2], log(3), 'TD target y(s1, exit) = log R(s1)');
  const deltas = TRANSITIONS.map((t, i) => Q[t.s][t.a] - y[i]);
  const mean = deltas.reduce((s, d) => s + tdLoss(d, false).loss, 0) / 3;
  const hand = (0.8 ** 2 + 0.5 ** 2 + (0.2 - log(3)) ** 2) / 6;
  close(mean, hand, 'mean TD loss');
  close(mean, 0.282917, 'mean TD loss (decimal)', 1e-6);
  // Huber: |δ| < 1 everywhere, so the same value
  close(deltas.reduce((s, d) => s + tdLoss(d, true).loss, 0) / 3, hand, 'mean Huber TD loss');

  // The fixed point: iterating Q ← y reaches Q(s0) = [log 3, 0], V(s0) = log Z = log 4,
  // where the TD loss is 0 and softmax(Q(s0)) = [¾, ¼] = R/Z.
  let q = [
    [0, 0],
    [0, 0],
  ];
  for (let k = 0; k < 10; k++) {
    const yk = targets(q, 0, -100);
    q = [
      [yk[0], yk[1]],
      [yk[2], 0],
    ];
  }
  close(q[0][0], log(3), 'fixed-point Q(s0, a0)', 1e-12);
  close(softValue(q[0], 0, MASKS[0], 0, 2, 1), log(4), 'fixed-point V(s0) = log Z');
  const yStar = targets(q, 0, -100);
  TRANSITIONS.forEach((t, i) => close(tdLoss(q[t.s][t.a] - yStar[i], true).loss, 0, `TD loss at the fixed point, transition ${i}`));
});

test('Munchausen with τ = 1/(1 − α): the fixed-point policy softmax(Q/τ) is still R/Z', () => {
  // At the fixed point Q(s,a) = r + V(s') + α(Q(s,a) − V(s)), so Q/τ = (1 − α)Q = r + V(s') − αV(s)
  // up to a per-state constant: softmax(Q/τ) is the soft-optimal policy, π(a0|s0) = ¾.
  for (const alpha of [0.15, 0.5, 0.9]) {
    const tau = 1 / (1 - alpha);
    let q = [
      [0, 0],
      [0, 0],
    ];
    for (let k = 0; k < 2000; k++) {
      const y = targets(q, alpha, -1e9);
      q = [
        [y[0], y[1]],
        [y[2], 0],
      ];
    }
    const p0 = 1 / (1 + exp((q[0][1] - q[0][0]) / tau));
    close(p0, 0.75, `M-DQN fixed-point policy π(a0|s0) with α = ${alpha}, τ = 1/(1 − α)`, 1e-9);
    // with the wrong temperature (τ = 1) the fixed point is not R/Z
    const wrong = 1 / (1 + exp(q[0][1] - q[0][0]));
    assert.ok(Math.abs(wrong - 0.75) > 0.01, `α = ${alpha}: softmax(Q) ${wrong} should differ from R/Z`);
  }
});

test('the learners use τ = 1/(1 − α): hypergrid M-DQN and the LM policy temperature', async () => {
  const env = new Hypergrid({ ndim: 2, height: 3, reward: 'standard' });
  for (const [algo, alpha, tau] of [
    ['mdqn', 0.9, 10],
    ['mdqn', 0.15, 1 / 0.85],
    ['softdqn', 0.9, 1],
  ] as const) {
    const t = await buildTrainer(
      env,
      { ...REFERENCE_TRAINER_DEFAULTS, algo, munchausenAlpha: alpha, hidden: [8], bufferSize: 64, iterations: 1 },
      new Rng(0),
    );
    close(t.temperature, tau, `${algo} sampling temperature τ with α = ${alpha}`, 1e-12);
    t.dispose();
  }
  for (const [objective, alpha, tau] of [
    ['mdqn', 0.5, 2],
    ['mdqn', 0.75, 4],
    ['softdqn', 0.5, 1],
    ['tb', 0.5, 1],
  ] as const) {
    const cfg = validate(
      { objective, seed: 0, model: 'm', task: { kind: 'pairs' }, dqn: { munchausenAlpha: alpha } },
      trainConfigSchema,
      'test',
    );
    close(policyTemperature(cfg), tau, `LM ${objective} policy temperature τ with α = ${alpha}`);
  }
});
