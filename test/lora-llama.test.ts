/**
 * LoRA on the LLaMA family (RMSNorm, rotary, grouped-query attention, SwiGLU; Qwen2 biases;
 * tied head) on tiny random models built by the LLaMA writer: the tfjs forward from the ONNX
 * initializers against the ONNX session (B = 0), the ONNX graph with low-rank branches against
 * the tfjs forward for random A, B (full pass, KV cache, left padding), PEFT's default targets
 * and key names, the merged weights, and a TB run against the exact posterior (600 steps).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { UsageError } from '../src/core/errors.js';
import { readConfig, readGptWeights } from '../src/lm/folder.js';
import { LmSession } from '../src/lm/session.js';
import { packLeft } from '../src/lm/batch.js';
import { loraFamily, loraModules } from '../src/lm/lora-spec.js';
import type { LoraFactors } from '../src/lm/lora-graph.js';
import { decodeModel } from '../src/lm/onnx-graph.js';
import { writeTempLlama, type TempLlama } from '../src/lmbuild/fixtures.js';
import { LoraAdapter, loadFrozenModel, loraForward, openLoraSession } from '../src/finetune/lora.js';
import { mergedOnnx, peftTensors } from '../src/finetune/export.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { exactPosterior } from '../src/finetune/posterior.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const temps: TempLlama[] = [];
after(() => temps.forEach((m) => m.cleanup()));
const make = (seed: number, over: object = {}, opts: { bos?: boolean; std?: number } = {}) => {
  const m = writeTempLlama(seed, { ...opts, over });
  temps.push(m);
  return m;
};

function maxAbsDiffRows(a: ArrayLike<number>, b: ArrayLike<number>, rows: number[], width: number): number {
  let m = 0;
  for (const r of rows) for (let j = 0; j < width; j++) m = Math.max(m, Math.abs(a[r * width + j] - b[r * width + j]));
  return m;
}

function realRows(mask: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

function randomFactors(adapter: LoraAdapter, seed: number, std: number): Map<string, LoraFactors> {
  const rng = new Rng(seed);
  const f = new Map<string, LoraFactors>();
  for (const m of adapter.modules)
    f.set(m.name, {
      a: Float32Array.from({ length: m.inDim * adapter.config.rank }, () => rng.normal() / Math.sqrt(m.inDim)),
      b: Float32Array.from({ length: adapter.config.rank * m.outDim }, () => rng.normal() * std),
    });
  return f;
}

test('LLaMA LoRA targets: PEFT defaults q_proj, v_proj; shapes per module (GQA k/v narrower); unknown names exit 2', () => {
  const m = make(21);
  const facts = readConfig(m.dir);
  assert.deepEqual(loraFamily(facts).defaultTargets, ['q_proj', 'v_proj']);
  assert.equal(loraFamily(facts).fanInFanOut, false);
  assert.deepEqual(
    loraModules(facts, null, 4).map((x) => x.name),
    [
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ],
  );
  // tiny config: d 32, 4 query heads and 2 KV heads of 8, intermediate 64
  const l0 = loraModules(facts, ALL, 4)
    .filter((x) => x.layer === 0)
    .map((x) => [x.target, x.inDim, x.outDim]);
  assert.deepEqual(l0, [
    ['q_proj', 32, 32],
    ['k_proj', 32, 16],
    ['v_proj', 32, 16],
    ['o_proj', 32, 32],
    ['gate_proj', 32, 64],
    ['up_proj', 32, 64],
    ['down_proj', 64, 32],
  ]);
  assert.throws(
    () => loraModules(facts, ['c_attn'], 4),
    (e: Error) =>
      e instanceof UsageError && /valid names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head/.test(e.message),
  );
  const head = loraModules(facts, ['lm_head'], 4);
  assert.deepEqual(
    head.map((x) => [x.name, x.inDim, x.outDim, x.peftPath]),
    [['lm_head', 32, facts.vocabSize, 'lm_head']],
  );
  assert.throws(
    () => loraModules(facts, ALL, 17),
    (e: Error) => e instanceof UsageError && /1\.\.16/.test(e.message),
  );
});

for (const [label, over] of [
  ['llama, GQA 4/2, untied head', {}],
  ['qwen2 (q/k/v biases), GQA 4/1', { modelType: 'qwen2', attentionBias: true, nKvHead: 1 }],
  ['llama, tied embeddings, MHA', { tieWordEmbeddings: true, nKvHead: 4 }],
] as const) {
  test(`${label}: tfjs forward with B = 0 equals the ONNX session; branched ONNX equals tfjs for random A, B (full, KV cache, left padding) (≤ 1e-4)`, async () => {
    await selectBackend();
    const m = make(22, over);
    const dir = m.dir;
    const facts = readConfig(dir);
    const V = facts.vocabSize;
    const base = loadFrozenModel(dir);
    assert.equal(base.family, 'llama');
    const targets = 'tieWordEmbeddings' in over ? ALL : [...ALL, 'lm_head'];
    if ('tieWordEmbeddings' in over)
      assert.throws(
        () => loraModules(facts, [...ALL, 'lm_head'], 4),
        (e: Error) => e instanceof UsageError && /tied/.test(e.message),
      );
    const ad = new LoraAdapter(facts, { rank: 4, alpha: 8, targets }, 1);
    const rng = new Rng(5);
    const p = packLeft(
      [23, 9, 16].map((n) => Array.from({ length: n }, () => rng.int(V - 2))),
      facts.padTokenId,
    );
    const rows = realRows(p.mask);
    const plain = await LmSession.open(dir);
    const baseOut = await plain.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const ref0 = tf.tidy(() => loraForward(base, ad, p.batch, p.len, p.ids, p.mask).logits.dataSync().slice());
    const d0 = maxAbsDiffRows(baseOut.logits, ref0, rows, V);

    ad.setFactors(randomFactors(ad, 7, 0.5));
    const s = await openLoraSession(dir, ad);
    const ref = tf.tidy(() => loraForward(base, ad, p.batch, p.len, p.ids, p.mask).logits.dataSync().slice());
    const full = await s.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const dFull = maxAbsDiffRows(full.logits, ref, rows, V);
    const moved = maxAbsDiffRows(full.logits, baseOut.logits, rows, V);
    // KV cache: the first 12 columns in one call, then one column at a time
    const B = p.batch,
      S = p.len;
    const cols = (a: number, b: number) => Array.from({ length: B }, (_, r) => Array.from(p.ids.subarray(r * S + a, r * S + b))).flat();
    const mcols = (b: number) => Array.from({ length: B }, (_, r) => Array.from(p.mask.subarray(r * S, r * S + b))).flat();
    let out = await s.forward({ batch: B, inputIds: cols(0, 12), attentionMask: mcols(12) });
    const stepped = new Float32Array(B * S * V);
    for (let r = 0; r < B; r++) stepped.set(out.logits.subarray(r * 12 * V, (r + 1) * 12 * V), r * S * V);
    for (let t = 12; t < S; t++) {
      out = await s.forward({ batch: B, inputIds: cols(t, t + 1), attentionMask: mcols(t + 1), past: out.present });
      for (let r = 0; r < B; r++) stepped.set(out.logits.subarray(r * V, (r + 1) * V), (r * S + t) * V);
    }
    const dKv = maxAbsDiffRows(stepped, ref, rows, V);
    console.log(
      `${label}: B=0 tfjs vs ONNX ${d0.toExponential(2)}; random A,B ONNX vs tfjs full ${dFull.toExponential(2)}, KV ${dKv.toExponential(2)}; adapter moves logits by ${moved.toFixed(2)}`,
    );
    assert.ok(d0 <= 1e-4, `B = 0: ${d0}`);
    assert.ok(moved > 0.5, `adapter changes logits by only ${moved}`);
    assert.ok(dFull <= 1e-4, `full pass differs by ${dFull}`);
    assert.ok(dKv <= 1e-4, `KV-cached pass differs by ${dKv}`);
    await s.release();
    await plain.release();
    ad.dispose();
  });
}

test('LLaMA PEFT export: key names base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight, A r×in, B out×r; merged weights W + s·A·B', async () => {
  await selectBackend();
  const m = make(23);
  const facts = readConfig(m.dir);
  const ad = new LoraAdapter(facts, { rank: 4, alpha: 8, targets: ALL }, 2);
  const f = randomFactors(ad, 9, 0.2);
  ad.setFactors(f);
  const t = peftTensors(ad);
  assert.equal(t.size, 2 * 7 * 2);
  const qa = t.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!;
  const kb = t.get('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight')!;
  const db = t.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')!;
  assert.deepEqual(qa.shape, [4, 32]);
  assert.deepEqual(kb.shape, [16, 4]);
  assert.deepEqual(t.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape, [4, 64]);
  assert.deepEqual(db.shape, [32, 4]);
  // PEFT's A is our Aᵀ: element [k, i] = A[i, k]
  const a1 = f.get('model.layers.1.self_attn.q_proj')!.a;
  assert.equal(qa.data[2 * 32 + 5], a1[5 * 4 + 2]);
  // merged: HF's delta for nn.Linear is (B_peft·A_peft)·s, [out, in]; ours is its transpose
  const merged = decodeModel(mergedOnnx(m.dir, ad));
  const name = 'model.layers.0.self_attn.k_proj.weight';
  const wNew = readGptWeights(merged, [name]).get(name)!.data;
  const wOld = m.weights.get(name)!.data;
  const ka = t.get('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight')!.data;
  let worst = 0;
  for (let i = 0; i < 32; i++)
    for (let o = 0; o < 16; o++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += kb.data[o * 4 + k] * ka[k * 32 + i];
      worst = Math.max(worst, Math.abs(wNew[i * 16 + o] - (wOld[i * 16 + o] + 2 * s)));
    }
  assert.ok(worst < 1e-6, `merged k_proj differs by ${worst}`);
  ad.dispose();
});

test('LoRA TB on a tiny LLaMA (every linear layer + lm_head) fits the exact posterior at CI size (TV < 0.05, log Z within 0.1)', async () => {
  const m = make(16, {}, { bos: true, std: 0.15 });
  const cfg = validate(
    {
      objective: 'tb',
      seed: 0,
      model: m.dir,
      task: { kind: 'pairs', pairs: [{ x: 'Question: 3 + 9 = ? Answer:', y: '. The answer is 12.' }] },
      z: { maxLength: 4, allowed: [' 3', ' +', ' 9', ' ='] },
      reward: { prior: 'allowed', likelihoodWeight: 4 },
      adapter: { kind: 'lora', rank: 4, alpha: 8, targets: [...ALL, 'lm_head'] },
      // at 0.01 TB with LoRA settles on seeds 0-2 at TV .013-.072 (a Z that lost its mass before
      // exploration ended is not sampled again); 0.005 gives .010-.012 (docs/design.md §4, LoRA's learning rate)
      optim: { lr: 0.005 },
      exploration: { epsilon: { start: 0.1, end: 0, horizon: 300 } },
      train: { steps: 600, batchSize: 16, logEvery: 5, checkpointEvery: 20 },
    },
    trainConfigSchema,
    'test',
  );
  const t = await LmTrainer.create(cfg);
  const before = await exactPosterior(t);
  let logZ = NaN;
  for (let i = 0; i < cfg.train.steps; i++) logZ = (await t.trainStep()).logZ;
  const r = await exactPosterior(t);
  console.log(
    `LoRA llama TB CI posterior: TV ${before.tv.toFixed(4)} → ${r.tv.toFixed(4)}, log Z ${logZ.toFixed(3)} vs exact ${r.logZTrue.toFixed(3)}`,
  );
  assert.ok(before.tv > 0.3, `the untrained policy is far from the posterior (TV ${before.tv})`);
  assert.ok(Math.abs(r.policyMass - 1) < 1e-4);
  assert.ok(r.tv < 0.05, `TV ${r.tv}`);
  assert.ok(Math.abs(logZ - r.logZTrue) < 0.1, `log Z ${logZ} vs exact ${r.logZTrue}`);
});
