import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyBatch, type LossResult, type TrajectoryBatch } from '../src/gfn/trajectories.js';
import { detailedBalance, subTrajectoryBalance, trajectoryBalance } from '../src/gfn/losses.js';
import { Rng } from '../src/core/rng.js';

const ln = Math.log;

/**
 * One trajectory on a tiny DAG, worked by hand: s0 → s1 → (exit at x = s1).
 * P_F(s1|s0) = 1/2, P_F(exit|s1) = 1/4, P_B(s0|s1) = 1/2, R(x) = 2, Z_θ = 4,
 * flows F(s0) = 4, F(s1) = 1, sink F = R = 2.
 */
function handBatch(): TrajectoryBatch {
  const b = emptyBatch(1, 2);
  b.lengths[0] = 2;
  b.logPF.set([ln(0.5), ln(0.25)]);
  b.logPB.set([ln(0.5), 0]);
  b.logF.set([ln(4), ln(1), ln(2)]);
  b.logR[0] = ln(2);
  return b;
}

test('TB on the hand example: δ = log(4·½·¼ / (2·½)) = log ½', () => {
  const g = trajectoryBalance(handBatch(), new Float64Array([ln(4)]));
  assert.ok(Math.abs(g.loss - ln(0.5) ** 2) < 1e-12, `TB loss ${g.loss} vs hand value log(½)² = ${ln(0.5) ** 2}`);
  assert.ok(Math.abs(g.loss - 0.4804530139182014) < 1e-12, `TB loss ${g.loss} vs 0.4804530139182014`);
  // δ < 0: raising log Z or log P_F lowers the loss, raising log P_B raises it
  assert.ok(g.dLogZ[0] < 0 && Math.abs(g.dLogZ[0] - 2 * ln(0.5)) < 1e-12);
  assert.ok(g.dLogPF[0] < 0 && g.dLogPF[1] < 0);
  assert.ok(g.dLogPB[0] > 0);
});

test('DB on the hand example: δ0 = log 4, δ1 = log ⅛, mean of squares', () => {
  const g = detailedBalance(handBatch());
  const expected = (ln(4) ** 2 + ln(1 / 8) ** 2) / 2; // 3.12294...
  assert.ok(Math.abs(g.loss - expected) < 1e-12, `DB loss ${g.loss} vs hand value ${expected}`);
  assert.ok(Math.abs(g.loss - 3.1229445904683) < 1e-10, `DB loss ${g.loss} vs 3.1229445904683`);
  // edge 0 has δ > 0: lower log F(s0); edge 1 has δ < 0: raise log P_F(exit|s1)
  assert.ok(g.dLogF[0] > 0 && g.dLogPF[1] < 0);
  // node 1 sits in both edges: −2δ0/2 + 2δ1/2 = δ1 − δ0
  assert.ok(Math.abs(g.dLogF[1] - (ln(1 / 8) - ln(4))) < 1e-12);
});

test('SubTB(λ) on the hand example: (δ01² + δ12² + λ·δ02²)/(2 + λ)', () => {
  for (const lambda of [1, 0.9, 0.5]) {
    const g = subTrajectoryBalance(handBatch(), lambda);
    const expected = (ln(4) ** 2 + ln(1 / 8) ** 2 + lambda * ln(0.5) ** 2) / (2 + lambda);
    assert.ok(Math.abs(g.loss - expected) < 1e-12, `SubTB loss at λ=${lambda}: ${g.loss} vs hand value ${expected} (weights λ^(j−i−1))`);
  }
  assert.ok(Math.abs(subTrajectoryBalance(handBatch(), 1).loss - 2.2421140649516) < 1e-10, 'SubTB loss at λ = 1 vs 2.2421140649516');
});

test('SubTB limits: λ → 0 is DB (per trajectory), λ → ∞ is TB with log Z = log F(s0)', () => {
  const b = randomBatch(new Rng(3), 1, 6);
  assert.ok(Math.abs(subTrajectoryBalance(b, 1e-12).loss - detailedBalance(b).loss) < 1e-9);
  const tb = trajectoryBalance(b, new Float64Array([b.logF[0]]));
  assert.ok(Math.abs(subTrajectoryBalance(b, 1e9).loss - tb.loss) / tb.loss < 1e-6);
});

test('every loss gradient equals central finite differences', () => {
  const rng = new Rng(7);
  const b = randomBatch(rng, 4, 7);
  const logZ = new Float64Array([0.3, -0.2, 1.1, 0.5]);
  const losses: [string, (bb: TrajectoryBatch, z: Float64Array) => LossResult][] = [
    ['tb', (bb, z) => trajectoryBalance(bb, z)],
    ['db', (bb) => detailedBalance(bb)],
    ['subtb', (bb) => subTrajectoryBalance(bb, 0.9)],
  ];
  const h = 1e-6;
  for (const [name, f] of losses) {
    const g = f(b, logZ);
    const fields: ['logPF' | 'logPB' | 'logF', Float64Array][] = [
      ['logPF', g.dLogPF],
      ['logPB', g.dLogPB],
      ['logF', g.dLogF],
    ];
    for (const [field, grad] of fields) {
      const arr = b[field];
      for (let i = 0; i < arr.length; i++) {
        const keep = arr[i];
        arr[i] = keep + h;
        const up = f(b, logZ).loss;
        arr[i] = keep - h;
        const down = f(b, logZ).loss;
        arr[i] = keep;
        const fd = (up - down) / (2 * h);
        assert.ok(Math.abs(fd - grad[i]) < 1e-6, `${name} d${field}[${i}]: analytic ${grad[i]} vs fd ${fd}`);
      }
    }
    for (let i = 0; i < logZ.length; i++) {
      const keep = logZ[i];
      logZ[i] = keep + h;
      const up = f(b, logZ).loss;
      logZ[i] = keep - h;
      const down = f(b, logZ).loss;
      logZ[i] = keep;
      assert.ok(Math.abs((up - down) / (2 * h) - g.dLogZ[i]) < 1e-6, `${name} dlogZ`);
    }
  }
});

test('losses vanish on a consistent flow (all δ = 0)', () => {
  // F(s0) = Z = 3, two edges with P_F = ½, ⅓, P_B = 1, R = Z·½·⅓ = ½; F(s1) = Z·½ = 1.5
  const b = emptyBatch(1, 2);
  b.lengths[0] = 2;
  b.logPF.set([ln(1 / 2), ln(1 / 3)]);
  b.logF.set([ln(3), ln(1.5), ln(0.5)]);
  b.logR[0] = ln(0.5);
  assert.ok(trajectoryBalance(b, new Float64Array([ln(3)])).loss < 1e-25, 'TB loss on a consistent flow');
  assert.ok(detailedBalance(b).loss < 1e-25, 'DB loss on a consistent flow');
  assert.ok(subTrajectoryBalance(b, 0.9).loss < 1e-25, 'SubTB loss on a consistent flow');
});

/** Padded batch with lengths 2..T and random entries (the exit edge has log P_B = 0). */
function randomBatch(rng: Rng, B: number, T: number): TrajectoryBatch {
  const b = emptyBatch(B, T);
  for (let i = 0; i < B; i++) {
    const n = 2 + rng.int(T - 1);
    b.lengths[i] = n;
    for (let t = 0; t < n; t++) {
      b.logPF[i * T + t] = -rng.uniform() * 3;
      b.logPB[i * T + t] = t === n - 1 ? 0 : -rng.uniform() * 2;
    }
    for (let t = 0; t <= n; t++) b.logF[i * (T + 1) + t] = rng.normal();
    b.logR[i] = b.logF[i * (T + 1) + n];
  }
  return b;
}

test('SubTB with a flow mask uses only sub-trajectories between nodes of known flow', () => {
  // 3 edges, node 1's flow unknown: the pairs are (0,2), (0,3), (2,3) with weights λ^1, λ^2, λ^0
  const b = emptyBatch(1, 3);
  b.lengths[0] = 3;
  b.logPF.set([ln(0.5), ln(0.25), ln(0.8)]);
  b.logF.set([ln(6), 12345, ln(2), ln(0.3)]);
  b.logR[0] = ln(0.3);
  b.flowMask = new Uint8Array([1, 0, 1, 1]);
  const lambda = 0.9;
  const d02 = ln(6) + ln(0.5) + ln(0.25) - ln(2);
  const d03 = ln(6) + ln(0.5) + ln(0.25) + ln(0.8) - ln(0.3);
  const d23 = ln(2) + ln(0.8) - ln(0.3);
  const expected = (lambda * d02 ** 2 + lambda ** 2 * d03 ** 2 + d23 ** 2) / (lambda + lambda ** 2 + 1);
  const g = subTrajectoryBalance(b, lambda);
  assert.ok(Math.abs(g.loss - expected) < 1e-12, `masked SubTB loss ${g.loss} vs hand value ${expected}`);
  assert.equal(g.dLogF[1], 0, 'the unknown flow gets no gradient');
});

test('a batch of two trajectories of different lengths: TB/DB/SubTB average as defined (hand values)', () => {
  // b = 0: the 2-edge hand example above; b = 1: 3 edges, P_F = ½, ¼, ⅘, P_B = 1,
  // F = 6, 3, 2 and R = 0.3. Per edge (DB): δ = 0, log ⅜, log(1.6/0.3); TB with log Z = log 6:
  // δ = log(6·0.1/0.3) = log 2; SubTB pairs: δ01 = 0, δ12 = log ⅜, δ23 = log(16/3),
  // δ02 = log ⅜, δ13 = log 2, δ03 = log 2.
  const b = emptyBatch(2, 3);
  b.lengths.set([2, 3]);
  b.logPF.set([ln(0.5), ln(0.25), 0, ln(0.5), ln(0.25), ln(0.8)]);
  b.logPB.set([ln(0.5), 0, 0, 0, 0, 0]);
  b.logF.set([ln(4), ln(1), ln(2), 0, ln(6), ln(3), ln(2), ln(0.3)]);
  b.logR.set([ln(2), ln(0.3)]);
  const tb = trajectoryBalance(b, new Float64Array([ln(4), ln(6)]));
  const tbHand = (ln(0.5) ** 2 + ln(2) ** 2) / 2;
  assert.ok(Math.abs(tb.loss - tbHand) < 1e-12, `TB loss of the batch ${tb.loss} vs hand value ${tbHand} (mean over trajectories)`);
  const db = detailedBalance(b);
  const dbHand = (ln(4) ** 2 + ln(1 / 8) ** 2 + 0 + ln(0.375) ** 2 + ln(1.6 / 0.3) ** 2) / 5;
  assert.ok(Math.abs(db.loss - dbHand) < 1e-12, `DB loss of the batch ${db.loss} vs hand value ${dbHand} (mean over the 5 edges)`);
  for (const lambda of [0.9, 2]) {
    const a0 = (ln(4) ** 2 + ln(1 / 8) ** 2 + lambda * ln(0.5) ** 2) / (2 + lambda);
    const a1 =
      (0 + ln(0.375) ** 2 + ln(16 / 3) ** 2 + lambda * (ln(0.375) ** 2 + ln(2) ** 2) + lambda ** 2 * ln(2) ** 2) /
      (3 + 2 * lambda + lambda ** 2);
    const sub = subTrajectoryBalance(b, lambda);
    assert.ok(
      Math.abs(sub.loss - (a0 + a1) / 2) < 1e-12,
      `SubTB loss of the batch at λ=${lambda}: ${sub.loss} vs hand value ${(a0 + a1) / 2}`,
    );
  }
  // the terminal flow is R, known whatever the mask says at the last node
  b.flowMask = new Uint8Array([1, 1, 0, 0, 1, 1, 1, 0]);
  const masked = subTrajectoryBalance(b, 0.9);
  assert.ok(
    Math.abs(masked.loss - subTrajectoryBalance({ ...b, flowMask: undefined } as TrajectoryBatch, 0.9).loss) < 1e-12,
    'SubTB loss with the terminal node unmarked in the flow mask',
  );
});
