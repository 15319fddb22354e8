import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrioritizedReplay } from '../src/softrl/replay.js';
import { Rng } from '../src/core/rng.js';

test('prioritized replay samples in proportion to priority^α', () => {
  const buf = new PrioritizedReplay(8, 0.5);
  for (let i = 0; i < 4; i++) buf.add();
  buf.update(new Int32Array([0, 1, 2, 3]), [1, 4, 9, 16]); // priority^0.5 = 1, 2, 3, 4 (+1e-6)
  const rng = new Rng(11);
  const counts = [0, 0, 0, 0];
  const n = 100_000;
  for (let k = 0; k < n / 100; k++) for (const s of buf.sample(100, rng, 1).slots) counts[s]++;
  const expected = [0.1, 0.2, 0.3, 0.4];
  counts.forEach((c, i) => assert.ok(Math.abs(c / n - expected[i]) < 0.005, `slot ${i}: ${c / n}`));
  // importance weights (N·P)^−β / max: slot 0 has P = 0.1 → the largest weight, 1
  const { slots, weights } = buf.sample(64, rng, 1);
  slots.forEach((s, i) => assert.ok(Math.abs(weights[i] - 0.1 / expected[s]) < 1e-5));
});

test('α = 0 is the uniform buffer; the ring overwrites the oldest slot', () => {
  const buf = new PrioritizedReplay(3, 0);
  const slots = [buf.add(), buf.add(), buf.add(), buf.add()];
  assert.deepEqual(slots, [0, 1, 2, 0]);
  assert.equal(buf.size, 3);
  buf.update(new Int32Array([1]), [100]);
  const rng = new Rng(2);
  const counts = [0, 0, 0];
  for (let k = 0; k < 300; k++) for (const s of buf.sample(10, rng, 0).slots) counts[s]++;
  counts.forEach((c) => assert.ok(Math.abs(c / 3000 - 1 / 3) < 0.03));
});

test('rng: same seed same stream, state round trip, uniform moments', () => {
  const a = new Rng(42),
    b = new Rng(42);
  for (let i = 0; i < 10; i++) assert.equal(a.nextU32(), b.nextU32());
  const saved = a.state();
  const x = a.uniform();
  assert.equal(Rng.fromState(saved).uniform(), x);
  const r = new Rng(1);
  let s = 0,
    s2 = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    assert.ok(u >= 0 && u < 1);
    s += u;
    s2 += u * u;
  }
  assert.ok(Math.abs(s / n - 0.5) < 0.005);
  assert.ok(Math.abs(s2 / n - 1 / 3) < 0.005);
  let g = 0,
    g2 = 0;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    g += z;
    g2 += z * z;
  }
  assert.ok(Math.abs(g / n) < 0.01 && Math.abs(g2 / n - 1) < 0.02);
});
