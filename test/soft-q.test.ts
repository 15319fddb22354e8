/**
 * The shared pieces of the refactor into one house: the numerics of core/math.ts, the Adam
 * step of core/adam.ts and the soft-Q learner of src/softrl (targets, TD loss, buffer), each
 * against hand-worked values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logSoftmaxAt, maskedLogSoftmax, maskedLogSumExp, softTemperature } from '../src/core/math.js';
import { ADAM_DEFAULTS, ScalarAdam, adamStep } from '../src/core/adam.js';
import { SoftQLearner, type QRows, type SoftQModel } from '../src/softrl/soft-q.js';
import { TransitionBuffer, emptyTransitions } from '../src/softrl/transitions.js';
import { Rng } from '../src/core/rng.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('masked log-sum-exp / log-softmax: hand-worked values', () => {
  // allowed entries log 1 and log 3 (the 100 is masked out): LSE = log 4
  const x = [100, 0, Math.log(3)],
    mask = [0, 1, 1];
  close(maskedLogSumExp(x, 0, 3, mask), Math.log(4));
  close(logSoftmaxAt(x, 0, 3, 2, mask), Math.log(3 / 4));
  const out = new Float64Array(3);
  close(maskedLogSoftmax(x, 0, 3, mask, 0, out), Math.log(4));
  assert.equal(out[0], -Infinity);
  close(out[1], Math.log(1 / 4));
  // τ = 2 on [0, 2 log 3]: softmax(x/τ) = [1/4, 3/4]
  close(logSoftmaxAt([0, 2 * Math.log(3)], 0, 2, 0, null, 0, 2), Math.log(1 / 4));
  close(softTemperature(0.15), 1 / 0.85);
  assert.equal(softTemperature(0), 1);
});

test('Adam: the first step moves each weight by lr·sign(g) (bias-corrected, up to eps); AdamW decays', () => {
  const p = new Float64Array([1, -2]),
    m = new Float64Array(2),
    v = new Float64Array(2);
  adamStep(p, [0.5, -3], m, v, 1, 0.1, ADAM_DEFAULTS);
  close(p[0], 1 - 0.1 * (0.5 / (0.5 + 1e-8)));
  close(p[1], -2 + 0.1 * (3 / (3 + 1e-8)));
  const w = new Float64Array([2]);
  adamStep(w, [0], new Float64Array(1), new Float64Array(1), 1, 0.1, { ...ADAM_DEFAULTS, weightDecay: 0.5, decoupled: true });
  close(w[0], 2 - 0.1 * 0.5 * 2); // zero gradient: only the decoupled decay lr·wd·p
  const s = new Float64Array([0]);
  new ScalarAdam(1, 0.01).step(s, [-4]);
  close(s[0], 0.01 * (4 / (4 + 1e-8)));
});

/** A tabular Q-function on 2 states × 2 actions: the online and target tables are given. */
function tabular(target: number[][], mask: number[][]): SoftQModel & { dQ: number[] } {
  const model = {
    dQ: [] as number[],
    targetQ(s: Record<string, Int32Array | Float32Array | Uint8Array>, n: number): QRows {
      const q = new Float64Array(n * 2),
        mk = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) for (let a = 0; a < 2; a++) (q[i * 2 + a] = target[s.s[i]][a]), (mk[i * 2 + a] = mask[s.s[i]][a]);
      return { q, width: 2, mask: mk, A: 2 };
    },
    backward(_b: unknown, dQ: (qa: ArrayLike<number>) => Float64Array) {
      model.dQ = Array.from(dQ([0, 0]));
    },
    polyak() {},
  };
  return model;
}

test('soft-Q targets: y = r + τ·LSE(Q̄(s′)/τ) (none after exit) + α·clip(τ log π̄(a|s), l0, 0)', () => {
  const fields = { s: { width: 1, type: 'i32' as const } };
  const b = emptyTransitions(2, fields);
  b.s.s.set([0, 1]);
  b.s2.s.set([1, 0]);
  b.act.set([0, 1]);
  b.rew.set([0.5, 2]);
  b.done.set([0, 1]);
  // state 1: both actions allowed, Q̄ = [0, log 3] → soft value (τ = 1) log 4
  const q = [
      [Math.log(2), 0],
      [0, Math.log(3)],
    ],
    mask = [
      [1, 0],
      [1, 1],
    ];
  const soft = new SoftQLearner(tabular(q, mask), fields, { alpha: 0, l0: -100, huber: true, bufferSize: 4, perAlpha: 0, polyak: 1 });
  const y = soft.targets(b);
  close(y[0], 0.5 + Math.log(4));
  close(y[1], 2);
  // Munchausen α = 0.5, τ = 2: the bonus at (s 0, a 0), the only allowed action there, is α·clip(0) = 0;
  // at (s 1, a 1): π̄ = softmax(Q̄/2) = [1/(1+√3), √3/(1+√3)]
  const m = new SoftQLearner(tabular(q, mask), fields, { alpha: 0.5, l0: -100, huber: true, bufferSize: 4, perAlpha: 0, polyak: 1 });
  const ym = m.targets(b);
  const v1 = 2 * Math.log(1 + Math.sqrt(3)); // τ·LSE(Q̄(1, ·)/τ)
  close(ym[0], 0.5 + v1, 1e-12);
  close(ym[1], 2 + 0.5 * 2 * Math.log(Math.sqrt(3) / (1 + Math.sqrt(3))), 1e-12);
});

test('soft-Q update: Huber gradient mean over the batch; the buffer keeps a done row’s old next state', () => {
  const fields = { s: { width: 1, type: 'i32' as const } };
  const model = tabular(
    [
      [0, 0],
      [0, 0],
    ],
    [
      [1, 1],
      [1, 1],
    ],
  );
  const learner = new SoftQLearner(model, fields, { alpha: 0, l0: -100, huber: true, bufferSize: 2, perAlpha: 0, polyak: 1 });
  const b = emptyTransitions(1, fields);
  b.rew[0] = 3; // exit with reward 3: y = 3, Q = 0, δ = −3 → Huber gradient −1
  b.done[0] = 1;
  learner.buffer.add(b, 0);
  close(learner.update(1, new Rng(0)), 3 - 0.5);
  assert.deepEqual(model.dQ, [-1]);

  const buf = new TransitionBuffer(2, 0, fields);
  const t = emptyTransitions(1, fields);
  t.s2.s[0] = 7;
  buf.add(t, 0); // live: s' = 7 stored
  t.done[0] = 1;
  t.s2.s[0] = 9;
  const slot = buf.add(t, 0); // done: s' not copied
  const { files, meta } = buf.exportState();
  const back = new TransitionBuffer(2, 0, fields);
  back.importState((n) => files[n], meta);
  assert.deepEqual(Array.from(back.gather(new Int32Array([0, slot])).s2.s), [7, 0]);
  assert.equal(back.size, 2);
});
