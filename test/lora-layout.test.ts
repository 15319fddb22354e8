/**
 * The speed-ups of the LoRA training forward must not change its numbers beyond float32
 * round-off: the shared-prefix layout (rows with the same X run it once) against one
 * unpadded forward per row (logits and LoRA gradients), on GPT-2 and on a LLaMA-family model
 * with grouped-query attention; the frozen-weight forms of tfops against the full ones.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { readConfig } from '../src/lm/folder.js';
import type { LoraFactors } from '../src/lm/lora-graph.js';
import { writeTempLlama, writeTempModel } from '../src/lmbuild/fixtures.js';
import { layerNorm, layerNormW, linear, linearW, matMul2, matMulC, matMulW } from '../src/lmbuild/tfops.js';
import { sharedPrefixLayout } from '../src/lmbuild/token-layout.js';
import { LoraAdapter, loadFrozenModel, loraForward, loraNodeLogits } from '../src/finetune/lora.js';

const gpt = writeTempModel(7, {}, {}, 2);
const llama = writeTempLlama(22, { over: { nKvHead: 2 } });
after(() => {
  gpt.cleanup();
  llama.cleanup();
});

function randomFactors(adapter: LoraAdapter, seed: number): Map<string, LoraFactors> {
  const rng = new Rng(seed);
  const f = new Map<string, LoraFactors>();
  for (const m of adapter.modules)
    f.set(m.name, {
      a: Float32Array.from({ length: m.inDim * adapter.config.rank }, () => rng.normal() / Math.sqrt(m.inDim)),
      b: Float32Array.from({ length: adapter.config.rank * m.outDim }, () => rng.normal() * 0.2),
    });
  return f;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

for (const [label, dir, targets] of [
  ['GPT-2', gpt.dir, ['c_attn', 'c_proj', 'c_fc', 'lm_head']],
  ['LLaMA (GQA 4/2)', llama.dir, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head']],
] as const) {
  test(`${label}: node logits and LoRA gradients of rows sharing X (shared-prefix layout) equal one unpadded forward per row`, async () => {
    await selectBackend();
    const facts = readConfig(dir);
    const V = facts.vocabSize;
    const base = loadFrozenModel(dir);
    const ad = new LoraAdapter(facts, { rank: 4, alpha: 8, targets: [...targets] }, 1);
    ad.setFactors(randomFactors(ad, 3));
    const rng = new Rng(9);
    const tok = (n: number) => Array.from({ length: n }, () => 1 + rng.int(V - 3));
    const X = [tok(9), tok(5)];
    // two questions of different lengths (left padding of the shorter row), tails of 0..4
    // tokens, reads inside X (j ≤ 0), at X (j = 0) and in Z; row 5 starts row 0's Z (read from
    // row 0's tokens), row 6 repeats row 1 (the same logits bit for bit)
    const xs = [X[0], X[1], X[0], X[0], X[1], X[0], X[1]];
    const z0 = tok(4),
      z1 = tok(2);
    const zs = [z0, z1, [], tok(3), tok(1), z0.slice(0, 2), z1];
    const nodes = [[0, 1, 2, 3, 4], [-2, 0, 2], [0], [1, 3], [0, 1], [0, 1, 2], [-2, 0, 2]];
    const w = Float32Array.from({ length: nodes.flat().length * V }, () => rng.normal());
    const vars = ad.trainableVariables();
    // shared: one forward of the layout (groups < rows, every X non-empty)
    let shared: Float32Array = new Float32Array();
    const gShared = tf.variableGrads(() => {
      const l = loraNodeLogits(base, ad, xs, zs, nodes);
      shared = l.dataSync() as Float32Array;
      return tf.sum(tf.mul(l, tf.tensor2d(w, l.shape))) as tf.Scalar;
    }, vars);
    // reference: each row alone, unpadded (positions 0..n−1), read at its last token
    const perRow: number[] = [];
    const gRef = tf.variableGrads(() => {
      let total = tf.scalar(0);
      let k = 0;
      xs.forEach((x, b) => {
        for (const j of nodes[b]) {
          const row = [...x, ...zs[b]].slice(0, x.length + j);
          const { logits } = loraForward(base, ad, 1, row.length, row);
          const last = tf.slice(logits, [row.length - 1, 0], [1, V]);
          perRow.push(...last.dataSync());
          total = tf.add(total, tf.sum(tf.mul(last, tf.tensor2d(w.subarray(k * V, (k + 1) * V), [1, V])))) as tf.Scalar;
          k++;
        }
      });
      return total;
    }, vars);
    const dLogit = maxDiff(shared, perRow);
    // row 6 = row 1: nodes 16..18 and 5..7 of the stack
    assert.deepEqual(shared.slice(16 * V, 19 * V), shared.slice(5 * V, 8 * V));
    let dGrad = 0,
      gScale = 0;
    for (const v of vars) {
      const a = gShared.grads[v.name].dataSync(),
        r = gRef.grads[v.name].dataSync();
      dGrad = Math.max(dGrad, maxDiff(a, r));
      gScale = Math.max(gScale, maxAbs(r));
    }
    console.log(
      `${label}: shared-prefix vs per-row max |Δlogit| ${dLogit.toExponential(2)} (logits up to ${maxAbs(perRow).toFixed(2)}), max |Δgrad| ${dGrad.toExponential(2)} (grads up to ${gScale.toFixed(2)})`,
    );
    assert.ok(dLogit < 1e-4, `logits differ by ${dLogit}`);
    assert.ok(gScale > 1e-2 && dGrad < 1e-4 * gScale, `gradients differ by ${dGrad} (scale ${gScale})`);
    tf.dispose([gShared.value, gRef.value, ...Object.values(gShared.grads), ...Object.values(gRef.grads)]);
    ad.dispose();
  });
}

test('sharedPrefixLayout: one row per prefix, its tails packed after it, positions continuing the prefix, reads; bad reads refused', () => {
  const l = sharedPrefixLayout({
    prefixes: [[5, 6, 7], [8]],
    tails: [
      { group: 1, tokens: [9, 10] },
      { group: 0, tokens: [] },
      { group: 0, tokens: [11] },
    ],
    reads: [
      { row: 0, len: 1 },
      { row: 0, len: 3 },
      { row: 1, len: 2 },
      { row: 1, len: 3 },
      { row: 2, len: 4 },
    ],
    padId: 0,
  });
  // row of prefix 0: 5 6 7 | 11 ; row of prefix 1 (left-padded): _ 8 | 9 10
  assert.deepEqual([...l.ids], [5, 6, 7, 11, 0, 8, 9, 10]);
  assert.deepEqual([...l.pos], [0, 1, 2, 3, -1, 0, 1, 2]);
  assert.deepEqual([...l.reads!], [5, 7, 1, 2, 3]);
  assert.throws(
    () => sharedPrefixLayout({ prefixes: [[1]], tails: [{ group: 0, tokens: [2] }], reads: [{ row: 0, len: 3 }], padId: 0 }),
    /read length 3/,
  );
});

test('tfops frozen-weight forms: same value and input gradient as the full forms; a trainable weight still gets its gradient', async () => {
  await selectBackend();
  const rng = new Rng(4);
  const rnd = (...shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.normal()),
      shape,
    );
  const x = tf.variable(rnd(6, 5)) as tf.Variable<tf.Rank.R2>;
  const w = rnd(5, 3) as tf.Tensor2D,
    b = rnd(3) as tf.Tensor1D,
    g = rnd(5) as tf.Tensor1D,
    c = rnd(4, 6) as tf.Tensor2D,
    bl = rnd(5) as tf.Tensor1D;
  const r3 = rnd(6, 3),
    r5 = rnd(6, 5),
    r4 = rnd(4, 5);
  const pairs: [string, () => tf.Tensor, () => tf.Tensor, tf.Tensor][] = [
    ['matMulW', () => matMulW(x, w), () => matMul2(x, w), r3],
    ['linearW', () => linearW(x, w, b), () => linear(x, w, b), r3],
    ['layerNormW', () => layerNormW(x, g, bl, 1e-5), () => layerNorm(x, g, bl, 1e-5), r5],
    ['matMulC', () => matMulC(c, x), () => matMul2(c, x), r4],
  ];
  for (const [name, frozen, full, r] of pairs) {
    const gf = tf.variableGrads(() => tf.sum(tf.mul(frozen(), r)) as tf.Scalar, [x]);
    const gr = tf.variableGrads(() => tf.sum(tf.mul(full(), r)) as tf.Scalar, [x]);
    assert.equal(gf.value.dataSync()[0], gr.value.dataSync()[0], `${name} value`);
    assert.deepEqual(gf.grads[x.name].dataSync(), gr.grads[x.name].dataSync(), `${name} input gradient`);
  }
  // a trainable variable as the weight takes the full form: its gradient is xᵀ·r
  const wv = tf.variable(w.clone()) as tf.Variable<tf.Rank.R2>;
  const gw = tf.variableGrads(() => tf.sum(tf.mul(matMulW(x, wv), r3)) as tf.Scalar, [wv]);
  assert.ok(maxDiff(gw.grads[wv.name].dataSync(), tf.matMul(tf.transpose(x), r3).dataSync()) < 1e-5);
});
