// Parity of the two SparseMlp implementations (fused wasm kernel, tfjs) with a float64
// reference, and of the reference with finite differences.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { countParams, initParams, layerSizes, type MlpSpec, type SparseMlp } from '../src/nn/mlp.js';
import { FusedMlp } from '../src/nn/fused-mlp.js';
import { TfjsMlp } from '../src/nn/tfjs-mlp.js';
import { ReferenceMlp } from '../src/nn/reference-mlp.js';

// Shapes that exercise every code path of the kernel: 32-wide register blocks, the 4-, 3- and
// 1-register tails, several hidden layers, and no hidden layer at all.
const SPECS: Record<string, MlpSpec> = {
  bench: { inputDim: 32, nnz: 4, hidden: [256, 256], outputDim: 10 },
  odd: { inputDim: 30, nnz: 3, hidden: [40, 76, 20], outputDim: 7 },
  wide_out: { inputDim: 12, nnz: 2, hidden: [33], outputDim: 11 },
  linear: { inputDim: 10, nnz: 2, hidden: [], outputDim: 5 },
};

type Impl = { name: string; make: (spec: MlpSpec, params: Float32Array) => SparseMlp };
const IMPLS: Impl[] = [
  { name: 'fused', make: (s, p) => FusedMlp.fromParams(s, p) },
  { name: 'tfjs', make: (s, p) => TfjsMlp.fromParams(s, p) },
];

/** Rows of distinct active indices: coordinate k of a row is one-hot in block k (like hypergrid). */
function randomRows(spec: MlpSpec, n: number, rng: Rng): Int32Array {
  const idx = new Int32Array(n * spec.nnz);
  const block = Math.floor(spec.inputDim / spec.nnz);
  for (let r = 0; r < n; r++) for (let k = 0; k < spec.nnz; k++) idx[r * spec.nnz + k] = k * block + rng.int(block);
  return idx;
}

function randn(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** Per parameter block (W_l, b_l): max |a − ref| ≤ tol · max |ref| (normwise relative error). */
function assertBlocksClose(spec: MlpSpec, a: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string): void {
  const s = layerSizes(spec);
  let o = 0;
  for (let l = 0; l + 1 < s.length; l++) {
    for (const [name, size] of [
      [`W${l}`, s[l] * s[l + 1]],
      [`b${l}`, s[l + 1]],
    ] as const) {
      assertClose(Array.prototype.slice.call(a, o, o + size), Array.prototype.slice.call(ref, o, o + size), tol, `${what} ${name}`);
      o += size;
    }
  }
}

function assertClose(a: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string, atol = 1e-30): void {
  assert.equal(a.length, ref.length, `${what}: length`);
  let scale = 0;
  let err = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    const e = Math.abs(a[i] - ref[i]);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  assert.ok(err <= tol * scale + atol, `${what}: max error ${err} at ${at} (${a[at]} vs ${ref[at]}), scale ${scale}, tol ${tol}`);
}

/** Shifts the first hidden layer's biases down so that most ReLUs (or all) are zero. */
function deadenParams(spec: MlpSpec, p: Float32Array, rng: Rng, fraction: number): Float32Array {
  const q = p.slice();
  if (spec.hidden.length === 0) return q;
  const b0 = spec.inputDim * spec.hidden[0];
  for (let j = 0; j < spec.hidden[0]; j++) if (rng.uniform() < fraction) q[b0 + j] -= 3;
  return q;
}

before(async () => {
  await selectBackend();
});

describe('ReferenceMlp (the oracle)', () => {
  it('gradient matches central finite differences (float64, tiny net)', () => {
    const spec: MlpSpec = { inputDim: 6, nnz: 2, hidden: [5, 4], outputDim: 3 };
    const rng = new Rng(7);
    const ref = ReferenceMlp.create(spec, 7);
    for (let i = 0; i < ref.numParams; i++) ref.params64[i] += 0.1 * rng.normal(); // break symmetry, avoid kinks
    const n = 5;
    const idx = randomRows(spec, n, rng);
    const dOut = new Float64Array(n * spec.outputDim).map(() => rng.normal());
    const loss = (): number => ref.forward64(idx, n).reduce((s, y, i) => s + y * dOut[i], 0);
    ref.forward(idx, n, new Float32Array(n * spec.outputDim), true);
    ref.backward(0, n, dOut);
    const h = 1e-6;
    for (let i = 0; i < ref.numParams; i++) {
      const p0 = ref.params64[i];
      ref.params64[i] = p0 + h;
      const lp = loss();
      ref.params64[i] = p0 - h;
      const lm = loss();
      ref.params64[i] = p0;
      const fd = (lp - lm) / (2 * h);
      assert.ok(Math.abs(fd - ref.grads64[i]) <= 1e-6 * (1 + Math.abs(fd)), `param ${i}: fd ${fd} vs backward ${ref.grads64[i]}`);
    }
  });
});

for (const impl of IMPLS) {
  describe(`${impl.name} MLP vs the float64 reference`, () => {
    for (const [specName, spec] of Object.entries(SPECS)) {
      for (const dead of [0, 0.8, 1]) {
        it(`forward and gradients (${specName}, ${dead * 100}% first-layer units pushed dead)`, () => {
          const rng = new Rng(11 + dead * 10);
          const p = deadenParams(spec, initParams(spec, rng), rng, dead);
          const net = impl.make(spec, p);
          const ref = new ReferenceMlp(spec, p);
          const n = 37;
          const idx = randomRows(spec, n, rng);
          const out = new Float32Array(n * spec.outputDim);
          const outRef = new Float32Array(n * spec.outputDim);
          assert.equal(net.forward(idx, n, out, true), 0);
          ref.forward(idx, n, outRef, true);
          assertClose(out, ref.forward64(idx, n), 1e-5, 'forward');
          const dOut = randn(n * spec.outputDim, rng);
          net.zeroGrad();
          net.backward(0, n, dOut);
          ref.backward(0, n, dOut);
          assertBlocksClose(spec, net.getGrads(), ref.grads64, 1e-5, 'grad');
          // accumulation: a second backward adds the same gradient again
          net.backward(0, n, dOut);
          ref.backward(0, n, dOut);
          assertBlocksClose(spec, net.getGrads(), ref.grads64, 1e-5, 'accumulated grad');
          net.dispose();
        });
      }
    }

    it('tape: two recorded blocks, backward on the second only; unrecorded forwards leave it alone', () => {
      const spec = SPECS.odd;
      const rng = new Rng(3);
      const p = initParams(spec, rng);
      const net = impl.make(spec, p);
      const [n1, n2] = [13, 21];
      const a = randomRows(spec, n1, rng);
      const b = randomRows(spec, n2, rng);
      const c = randomRows(spec, 5, rng);
      assert.equal(net.forward(a, n1, new Float32Array(n1 * spec.outputDim), true), 0);
      assert.equal(net.forward(c, 5, new Float32Array(5 * spec.outputDim), false), -1);
      assert.equal(net.tapeRows, n1);
      assert.equal(net.forward(b, n2, new Float32Array(n2 * spec.outputDim), true), n1);
      assert.equal(net.tapeRows, n1 + n2);
      const dB = randn(n2 * spec.outputDim, rng);
      net.zeroGrad();
      net.backward(n1, n2, dB);
      const ref = new ReferenceMlp(spec, p); // a fresh oracle that only ever saw block b
      ref.forward(b, n2, new Float32Array(n2 * spec.outputDim), true);
      ref.backward(0, n2, dB);
      assertBlocksClose(spec, net.getGrads(), ref.grads64, 1e-5, 'grad of block b');
      // a sub-range of a block
      net.zeroGrad();
      net.backward(n1 + 4, 7, dB.subarray(4 * spec.outputDim));
      ref.zeroGrad();
      ref.resetTape();
      ref.forward(b.subarray(4 * spec.nnz), 7, new Float32Array(7 * spec.outputDim), true);
      ref.backward(0, 7, dB.subarray(4 * spec.outputDim));
      assertBlocksClose(spec, net.getGrads(), ref.grads64, 1e-5, 'grad of rows 4..11 of block b');
      assert.throws(() => net.backward(n1, n2 + 1, new Float32Array((n2 + 1) * spec.outputDim)), RangeError);
      net.resetTape();
      assert.equal(net.tapeRows, 0);
      assert.throws(() => net.backward(0, 1, dB), RangeError);
      assert.throws(() => net.forward(new Int32Array([0, 1, spec.inputDim]), 1, new Float32Array(spec.outputDim), false), RangeError);
      net.dispose();
    });

    it('3 Adam steps equal a hand-written float64 Adam on the reference', () => {
      const spec: MlpSpec = { inputDim: 16, nnz: 2, hidden: [32, 24], outputDim: 6 };
      const rng = new Rng(5);
      const p = initParams(spec, rng);
      const net = impl.make(spec, p);
      const ref = new ReferenceMlp(spec, p);
      const n = 19;
      for (let step = 0; step < 3; step++) {
        const idx = randomRows(spec, n, rng);
        const dOut = randn(n * spec.outputDim, rng);
        for (const m of [net, ref]) {
          m.resetTape();
          m.zeroGrad();
          const row0 = m.forward(idx, n, new Float32Array(n * spec.outputDim), true);
          m.backward(row0, n, dOut);
          m.adamStep(1e-3);
        }
        assertClose(net.getParams(), ref.params64, 0, `params after Adam step ${step + 1}`, 1e-5);
      }
      // non-default hyperparameters
      net.adamStep(3e-2, 0.8, 0.99, 1e-6);
      ref.adamStep(3e-2, 0.8, 0.99, 1e-6);
      assertClose(net.getParams(), ref.params64, 0, 'params after an Adam step with other betas', 1e-5);
      net.dispose();
    });

    it('polyakFrom with tau 0.25 and tau 1 (same engine and from the reference)', () => {
      const spec = SPECS.odd;
      const pa = initParams(spec, new Rng(1));
      const pb = initParams(spec, new Rng(2));
      for (const source of [impl.make(spec, pb), new ReferenceMlp(spec, pb)]) {
        const target = impl.make(spec, pa);
        target.polyakFrom(source, 0.25);
        const want = pa.map((x, i) => 0.75 * x + 0.25 * pb[i]);
        assertClose(target.getParams(), want, 0, 'tau 0.25', 1e-7);
        target.polyakFrom(source, 1);
        assert.deepEqual(target.getParams(), pb, 'tau 1 copies exactly');
        target.dispose();
        source.dispose();
      }
    });

    it('getParams/setParams round trip; same seed ⇒ same params', () => {
      const spec = SPECS.odd;
      const rng = new Rng(9);
      const p = randn(countParams(spec), rng);
      const net = impl.make(spec, initParams(spec, rng));
      net.setParams(p);
      assert.deepEqual(net.getParams(), p);
      assert.equal(net.numParams, countParams(spec));
      net.dispose();
      const create = impl.name === 'fused' ? FusedMlp.create : TfjsMlp.create;
      const a = create(spec, 42);
      const b = create(spec, 42);
      const c = create(spec, 43);
      assert.deepEqual(a.getParams(), b.getParams());
      assert.deepEqual(a.getParams(), initParams(spec, new Rng(42)));
      assert.notDeepEqual(a.getParams(), c.getParams());
      for (const m of [a, b, c]) m.dispose();
    });

    it('optimizer state round trip continues Adam identically (resume)', () => {
      const spec = SPECS.wide_out;
      const rng = new Rng(21);
      const p = initParams(spec, rng);
      const make = impl.name === 'fused' ? FusedMlp.fromParams : TfjsMlp.fromParams;
      const a = make(spec, p);
      const n = 9;
      const idx = randomRows(spec, n, rng);
      const dOut = randn(n * spec.outputDim, rng);
      const train = (m: FusedMlp | TfjsMlp): void => {
        m.resetTape();
        m.zeroGrad();
        m.backward(m.forward(idx, n, new Float32Array(n * spec.outputDim), true), n, dOut);
        m.adamStep(1e-2);
      };
      train(a);
      train(a);
      const b = make(spec, a.getParams());
      b.setOptimizerState(a.getOptimizerState());
      train(a);
      train(b);
      assert.deepEqual(b.getParams(), a.getParams());
      assert.equal(b.adamSteps, 3);
      a.dispose();
      b.dispose();
    });
  });
}

describe('fused MLP specifics', () => {
  it('the tape grows past its initial capacity and keeps earlier rows', () => {
    const spec: MlpSpec = { inputDim: 24, nnz: 3, hidden: [64, 64], outputDim: 9 };
    const rng = new Rng(4);
    const p = initParams(spec, rng);
    const net = FusedMlp.fromParams(spec, p);
    const ref = new ReferenceMlp(spec, p);
    const cap0 = net.tapeCapacity;
    const blocks: Int32Array[] = [];
    const n = 700;
    for (let i = 0; i < 3; i++) {
      const idx = randomRows(spec, n, rng);
      blocks.push(idx);
      assert.equal(net.forward(idx, n, new Float32Array(n * spec.outputDim), true), i * n);
      ref.forward(idx, n, new Float32Array(n * spec.outputDim), true);
    }
    assert.ok(net.tapeCapacity >= 3 * n && cap0 < 3 * n, `capacity ${cap0} → ${net.tapeCapacity}`);
    const dOut = randn(3 * n * spec.outputDim, rng);
    net.zeroGrad();
    net.backward(0, 3 * n, dOut);
    ref.backward(0, 3 * n, dOut);
    assertBlocksClose(spec, net.getGrads(), ref.grads64, 1e-5, 'grad over a grown tape');
    // more than one I/O chunk in a single call
    const big = randomRows(spec, 2500, rng);
    const out = new Float32Array(2500 * spec.outputDim);
    net.forward(big, 2500, out, false);
    assertClose(out, ref.forward64(big, 2500), 1e-5, 'chunked forward');
    net.dispose();
    assert.throws(() => net.getParams(), /dispose/);
  });

  it('a batched forward (row blocks, column-chunked weights) equals row-by-row forwards bitwise, after every kind of update', () => {
    for (const spec of Object.values(SPECS)) {
      const rng = new Rng(6);
      const net = FusedMlp.create(spec, 3);
      const other = FusedMlp.create(spec, 4);
      const n = 77; // two full blocks of rows and a partial one
      const idx = randomRows(spec, n, rng);
      const O = spec.outputDim;
      const check = (what: string) => {
        const all = new Float32Array(n * O);
        net.forward(idx, n, all, false);
        const rec = new Float32Array(n * O);
        net.resetTape();
        net.forward(idx, n, rec, true);
        const one = new Float32Array(O);
        for (let r = 0; r < n; r++) {
          net.forward(idx.subarray(r * spec.nnz, (r + 1) * spec.nnz), 1, one, false);
          assert.deepEqual(new Uint32Array(all.buffer, r * O * 4, O), new Uint32Array(one.buffer), `${what}, row ${r}`);
        }
        assert.deepEqual(new Uint32Array(rec.buffer), new Uint32Array(all.buffer), `${what}: recorded = not recorded`);
        // and the outputs follow the current parameters (the chunked copy is refreshed)
        const fresh = FusedMlp.fromParams(spec, net.getParams());
        const want = new Float32Array(n * O);
        fresh.forward(idx, n, want, false);
        assert.deepEqual(new Uint32Array(all.buffer), new Uint32Array(want.buffer), `${what}: = a fresh net with these parameters`);
        fresh.dispose();
      };
      check(`${spec.hidden.join('×')} initial`);
      net.zeroGrad();
      net.backward(0, n, randn(n * O, rng));
      net.adamStep(0.01);
      check('after adamStep');
      net.polyakFrom(other, 0.5);
      check('after polyakFrom');
      net.setParams(other.getParams());
      check('after setParams');
      net.dispose();
      other.dispose();
    }
  });

  it('polyakFrom a tfjs network (cross-engine)', () => {
    const spec = SPECS.wide_out;
    const pa = initParams(spec, new Rng(1));
    const pb = initParams(spec, new Rng(2));
    const target = FusedMlp.fromParams(spec, pa);
    const source = TfjsMlp.fromParams(spec, pb);
    target.polyakFrom(source, 0.25);
    assertClose(
      target.getParams(),
      pa.map((x, i) => 0.75 * x + 0.25 * pb[i]),
      0,
      'tau 0.25',
      1e-7,
    );
    target.polyakFrom(source, 1);
    assert.deepEqual(target.getParams(), pb);
    source.dispose();
    target.dispose();
  });
});

describe('tfjs MLP specifics', () => {
  it('leaks no tensors across training steps and frees everything on dispose', () => {
    const spec = SPECS.odd;
    const rng = new Rng(8);
    const n0 = tf.memory().numTensors;
    const a = TfjsMlp.create(spec, 1);
    const b = TfjsMlp.create(spec, 2);
    const idx = randomRows(spec, 16, rng);
    const dOut = randn(16 * spec.outputDim, rng);
    const step = (): void => {
      a.resetTape();
      a.zeroGrad();
      a.backward(a.forward(idx, 16, new Float32Array(16 * spec.outputDim), true), 16, dOut);
      a.adamStep(1e-3);
      b.polyakFrom(a, 0.25);
      a.getParams();
      a.getGrads();
    };
    step();
    const n1 = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.equal(tf.memory().numTensors, n1);
    a.dispose();
    b.dispose();
    assert.equal(tf.memory().numTensors, n0);
  });
});
