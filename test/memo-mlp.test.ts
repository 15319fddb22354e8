// MemoMlp (src/nn/memo-mlp.ts) must be invisible in the numbers: outputs, gradients and a whole
// M-DQN run equal those of the plain fused net bitwise, while it computes each distinct row once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import type { MlpSpec, SparseMlp } from '../src/nn/mlp.js';
import { FusedMlp } from '../src/nn/fused-mlp.js';
import { MemoMlp, canMemoize } from '../src/nn/memo-mlp.js';
import { Hypergrid } from '../src/envs/hypergrid.js';
import { policySpec } from '../src/gfn/policy-net.js';
import { SoftDqnTrainer, type DqnOptions } from '../src/softrl/dqn.js';

const SPEC: MlpSpec = { inputDim: 32, nnz: 4, hidden: [256, 256], outputDim: 10 };

/** n rows drawn from only `distinct` different hypergrid-like rows, so most rows repeat. */
function repeatingRows(n: number, distinct: number, rng: Rng): Int32Array {
  const pool = new Int32Array(distinct * 4);
  for (let r = 0; r < distinct; r++) for (let k = 0; k < 4; k++) pool[r * 4 + k] = k * 8 + rng.int(8);
  const idx = new Int32Array(n * 4);
  for (let r = 0; r < n; r++) {
    const p = rng.int(distinct);
    for (let k = 0; k < 4; k++) idx[r * 4 + k] = pool[p * 4 + k];
  }
  return idx;
}

const distinctRows = (idx: Int32Array, n: number): number => {
  const s = new Set<string>();
  for (let r = 0; r < n; r++) s.add(Array.from(idx.subarray(r * 4, r * 4 + 4)).join(','));
  return s.size;
};

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

test('MemoMlp forward equals the plain net bitwise and computes each distinct row once', () => {
  const rng = new Rng(3);
  const plain = FusedMlp.create(SPEC, 11);
  const memo = new MemoMlp(FusedMlp.create(SPEC, 11));
  const a = repeatingRows(300, 40, rng);
  const b = repeatingRows(200, 60, rng);
  const want = new Float32Array(500 * 10);
  plain.forward(a, 300, want, false);
  plain.forward(b, 200, want.subarray(3000), false);
  const got = new Float32Array(500 * 10);
  memo.forward(a, 300, got, false);
  assert.equal(memo.stats.computed, distinctRows(a, 300));
  memo.forward(b, 200, got.subarray(3000), false);
  const both = new Int32Array(500 * 4);
  both.set(a);
  both.set(b, 1200);
  assert.equal(memo.stats.computed, distinctRows(both, 500), 'rows seen in the first call are not recomputed');
  assert.deepEqual(bits(got), bits(want));
});

test('MemoMlp backward through repeated rows gives the gradients of a full pass, bitwise', () => {
  const rng = new Rng(5);
  const plain = FusedMlp.create(SPEC, 12);
  const memo = new MemoMlp(FusedMlp.create(SPEC, 12));
  const warm = repeatingRows(50, 30, rng); // earlier rows (a rollout), some of them reused below
  const batch = repeatingRows(256, 70, rng);
  const dOut = new Float32Array(256 * 10);
  for (let i = 0; i < dOut.length; i++) dOut[i] = rng.uniform() - 0.5;
  const scratch = new Float32Array(256 * 10);
  for (const net of [plain, memo] as SparseMlp[]) {
    net.resetTape();
    net.forward(warm, 50, scratch, true);
    const row0 = net.forward(batch, 256, scratch, true);
    assert.equal(row0, 50);
    net.zeroGrad();
    net.backward(row0, 256, dOut);
  }
  assert.ok(memo.stats.computed < 50 + 256 - 100, `computed ${memo.stats.computed} rows`);
  assert.deepEqual(bits(memo.getGrads()), bits(plain.getGrads()));
});

test('MemoMlp forgets its cache when the parameters change', () => {
  const rng = new Rng(7);
  const online = FusedMlp.create(SPEC, 1);
  const plain = FusedMlp.create(SPEC, 2);
  const memo = new MemoMlp(FusedMlp.create(SPEC, 2));
  const x = repeatingRows(64, 16, rng);
  const got = new Float32Array(64 * 10);
  const want = new Float32Array(64 * 10);
  memo.forward(x, 64, got, false);
  memo.polyakFrom(online, 0.25);
  plain.polyakFrom(online, 0.25);
  memo.forward(x, 64, got, false);
  plain.forward(x, 64, want, false);
  assert.deepEqual(bits(got), bits(want), 'after polyakFrom');
  memo.setParams(online.getParams());
  memo.forward(x, 64, got, false);
  online.forward(x, 64, want, false);
  assert.deepEqual(bits(got), bits(want), 'after setParams');
});

test('FusedMlp.copyTapeRows: a backward over copied rows equals one over recorded rows', () => {
  const rng = new Rng(9);
  const a = FusedMlp.create(SPEC, 4);
  const b = FusedMlp.create(SPEC, 4);
  const x = repeatingRows(20, 20, rng);
  const order = Int32Array.from([3, 3, 0, 19, 7, 3]);
  const xs = new Int32Array(order.length * 4);
  order.forEach((r, i) => xs.set(x.subarray(r * 4, r * 4 + 4), i * 4));
  const out = new Float32Array(20 * 10);
  const dOut = new Float32Array(order.length * 10);
  for (let i = 0; i < dOut.length; i++) dOut[i] = rng.uniform() - 0.5;
  a.forward(x, 20, out, true);
  const r0 = a.copyTapeRows(order, order.length);
  assert.equal(r0, 20);
  a.backward(r0, order.length, dOut);
  b.forward(xs, order.length, out, true);
  b.backward(0, order.length, dOut);
  assert.deepEqual(bits(a.getGrads()), bits(b.getGrads()));
  assert.throws(() => a.copyTapeRows(Int32Array.from([26]), 1), /outside the tape/);
});

/** The fused net without copyTapeRows: SoftDqnTrainer then takes the plain, unmemoized path. */
class Opaque implements SparseMlp {
  constructor(readonly net: FusedMlp) {}
  get spec() {
    return this.net.spec;
  }
  get numParams() {
    return this.net.numParams;
  }
  get tapeRows() {
    return this.net.tapeRows;
  }
  forward(i: Int32Array, n: number, o: Float32Array, r: boolean) {
    return this.net.forward(i, n, o, r);
  }
  backward(r: number, n: number, d: Float32Array) {
    this.net.backward(r, n, d);
  }
  resetTape() {
    this.net.resetTape();
  }
  zeroGrad() {
    this.net.zeroGrad();
  }
  adamStep(lr: number) {
    this.net.adamStep(lr);
  }
  getParams() {
    return this.net.getParams();
  }
  setParams(p: Float32Array) {
    this.net.setParams(p);
  }
  getGrads() {
    return this.net.getGrads();
  }
  polyakFrom(s: SparseMlp, tau: number) {
    this.net.polyakFrom(s instanceof Opaque ? s.net : s, tau);
  }
  dispose() {
    this.net.dispose();
  }
}

test('M-DQN with memoized nets reproduces the unmemoized run bitwise', () => {
  const env = new Hypergrid({ ndim: 3, height: 6, reward: 'standard' });
  const spec = policySpec(env, [64, 64]);
  const opts: DqnOptions = {
    alpha: 0.15,
    l0: -100,
    batchSize: 16,
    replayBatch: 64,
    bufferSize: 2000,
    perAlpha: 0.5,
    perBeta: [0, 1],
    iterations: 40,
    polyak: 0.25,
    lr: 1e-3,
    huber: true,
    importanceWeights: false,
    learningStarts: 4,
    explore: { epsilon: 0, temperature: 1 },
  };
  const run = (memo: boolean) => {
    const wrap = (seed: number): SparseMlp => (memo ? FusedMlp.create(spec, seed) : new Opaque(FusedMlp.create(spec, seed)));
    const net = wrap(0);
    const target = wrap(1);
    assert.equal(canMemoize(net), memo);
    const t = new SoftDqnTrainer(env, net, target, new Rng(21), opts);
    const losses: number[] = [];
    for (let i = 0; i < opts.iterations; i++) losses.push(t.step().loss);
    return { losses, params: net.getParams(), target: target.getParams() };
  };
  const a = run(true);
  const b = run(false);
  assert.ok(a.losses.slice(opts.learningStarts).every(Number.isFinite));
  assert.deepEqual(a.losses, b.losses);
  assert.deepEqual(bits(a.params), bits(b.params));
  assert.deepEqual(bits(a.target), bits(b.target));
});
