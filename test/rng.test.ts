import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';

// Known answers from an independent (Python) implementation of xoshiro128** and the
// splitmix32 seeding described in src/core/rng.ts; the state [1, 2, 3, 4] gives the
// published xoshiro128** outputs 11520, 0, 5927040, 70819200.

test('xoshiro128**: published outputs from the state [1, 2, 3, 4]', () => {
  const r = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual(
    [r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32()],
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492],
    'xoshiro128** output stream',
  );
});

test('splitmix32 seeding: the state and first outputs of seeds 0 and 42; uniform() of seed 7', () => {
  assert.deepEqual(new Rng(0).state(), [1020716019, 454327756, 1275600319, 1215922603], 'state of seed 0');
  assert.deepEqual(new Rng(42).state(), [2841494124, 1546383940, 1737289875, 3965672844], 'state of seed 42');
  const r = new Rng(42);
  assert.deepEqual(
    [r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32()],
    [3704290710, 166753127, 957952423, 1464233848],
    'stream of seed 42',
  );
  // 53 bits: (first >>> 5)·2^26 + (second >>> 6), over 2^53
  assert.equal(new Rng(7).uniform(), 0.052516552702946084, 'uniform() of seed 7');
});

test('setState, int, fork and categorical follow from the uniform stream', () => {
  const a = new Rng(5);
  for (let i = 0; i < 3; i++) a.nextU32();
  const saved = a.state();
  const b = new Rng(99);
  b.setState(saved);
  assert.deepEqual(b.state(), saved, 'state after setState');
  assert.equal(b.nextU32(), a.nextU32(), 'stream after setState');
  // int(n) = ⌊u·n⌋
  const c = new Rng(11),
    d = new Rng(11);
  for (let i = 0; i < 200; i++) assert.equal(c.int(7), Math.floor(d.uniform() * 7), `int(7) draw ${i}`);
  // fork = new Rng(x ^ imul(y, 0x27d4eb2d)) from the next two outputs
  const e = new Rng(3),
    f = new Rng(3);
  const child = e.fork();
  const x = f.nextU32(),
    y = f.nextU32();
  assert.deepEqual(child.state(), new Rng(x ^ Math.imul(y, 0x27d4eb2d)).state(), 'forked state');
  assert.equal(e.nextU32(), f.nextU32(), 'the parent advanced by two outputs');
  // categorical over p[off..off+n): inverse CDF of u·Σp over the positive weights
  const p = [9, 0, 1, 0, 3, 4];
  const g = new Rng(17),
    h = new Rng(17);
  for (let i = 0; i < 500; i++) {
    const u = h.uniform() * 8; // weights 1, 0, 3, 4 at off = 2, n = 4
    const want = u < 1 ? 0 : u < 4 ? 2 : 3;
    assert.equal(g.categorical(p, 2, 4), want, `categorical draw ${i} (u·Σp = ${u})`);
  }
  // off = 4 without n: the rest of the array, weights 3, 4
  for (let i = 0; i < 200; i++) {
    const u = h.uniform() * 7;
    assert.equal(g.categorical(p, 4), u < 3 ? 0 : 1, `categorical draw ${i} from offset 4 to the end`);
  }
  // default off = 0, n = p.length: weights 9, 0, 1, 0, 3, 4 (Σ 17)
  for (let i = 0; i < 500; i++) {
    const u = h.uniform() * 17;
    const want = u < 9 ? 0 : u < 10 ? 2 : u < 13 ? 4 : 5;
    assert.equal(g.categorical(p), want, `categorical draw ${i} over the whole array (u·Σp = ${u})`);
  }
});
