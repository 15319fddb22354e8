/** The factored slot × word head: outputs by hand, gradients against finite differences. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FactoredHeadMlp, innerSpec } from '../src/nn/factored-head.js';
import { ReferenceMlp } from '../src/nn/reference-mlp.js';

const L = 3,
  W = 4,
  r = 2,
  pass = 2;
const outer = { inputDim: 12, nnz: 3, hidden: [5], outputDim: L * W + pass };
const shape = { slots: L, words: W, rank: r };
const make = () => new FactoredHeadMlp(outer, ReferenceMlp.create(innerSpec(outer, shape), 3), shape, 3);
const idx = Int32Array.of(0, 5, 9, 1, 4, 10);

test('logit(j, w) = p_j + c_w + a_j · e_w; the other outputs pass through', () => {
  const net = make();
  const p = net.getParams();
  for (let w = 0; w < W; w++) p[net.inner.numParams + W * r + w] = 0.1 * (w + 1); // nonzero word biases
  net.setParams(p);
  const inner = new Float32Array(2 * net.inner.spec.outputDim);
  net.inner.forward(idx, 2, inner, false);
  const out = new Float32Array(2 * outer.outputDim);
  net.forward(idx, 2, out, false);
  const E = net.getParams().subarray(net.inner.numParams);
  const D = net.inner.spec.outputDim;
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < L; j++)
      for (let w = 0; w < W; w++) {
        let s = inner[i * D + j] + E[W * r + w];
        for (let q = 0; q < r; q++) s += inner[i * D + L + j * r + q] * E[w * r + q];
        assert.ok(Math.abs(out[i * outer.outputDim + j * W + w] - s) < 1e-5);
      }
    for (let c = 0; c < pass; c++) assert.equal(out[i * outer.outputDim + L * W + c], inner[i * D + L * (1 + r) + c]);
  }
});

test('gradients of Σ c·out equal central finite differences (inner weights and embeddings)', () => {
  const net = make();
  const c = Float32Array.from({ length: 2 * outer.outputDim }, (_, i) => Math.sin(1.3 * i + 0.2));
  const f = (p: Float32Array) => {
    const n = make();
    n.setParams(p);
    const out = new Float32Array(2 * outer.outputDim);
    n.forward(idx, 2, out, false);
    return out.reduce((s, v, i) => s + v * c[i], 0);
  };
  net.zeroGrad();
  const out = new Float32Array(2 * outer.outputDim);
  const row0 = net.forward(idx, 2, out, true);
  net.backward(row0, 2, c);
  const g = net.getGrads(),
    p0 = net.getParams();
  assert.equal(g.length, net.numParams);
  const h = 1e-2;
  let checked = 0;
  for (let k = 0; k < p0.length; k += 3) {
    const pp = Float32Array.from(p0),
      pm = Float32Array.from(p0);
    pp[k] += h;
    pm[k] -= h;
    const fd = (f(pp) - f(pm)) / (2 * h);
    assert.ok(Math.abs(fd - g[k]) < 2e-3 * Math.max(1, Math.abs(fd)), `param ${k}: fd ${fd} vs grad ${g[k]}`);
    checked++;
  }
  assert.ok(checked > 20);
});

test('closed slots (slotOpen false) get zero logits and no gradient', () => {
  const closed = { ...shape, slotOpen: (_: Int32Array, __: number, j: number) => j !== 1 };
  const net = new FactoredHeadMlp(outer, ReferenceMlp.create(innerSpec(outer, closed), 3), closed, 3);
  const out = new Float32Array(2 * outer.outputDim);
  net.forward(idx, 2, out, false);
  for (let i = 0; i < 2; i++) for (let w = 0; w < W; w++) assert.equal(out[i * outer.outputDim + W + w], 0);
});
