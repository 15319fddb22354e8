import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { UsageError } from '../src/core/errors.js';
import { readConfig } from '../src/lm/folder.js';
import { LmSession } from '../src/lm/session.js';
import { packLeft } from '../src/lm/batch.js';
import { loraModules } from '../src/lm/lora-spec.js';
import type { LoraFactors } from '../src/lm/lora-graph.js';
import { LoraAdapter, loadFrozenModel, loraForward, openLoraSession } from '../src/finetune/lora.js';

const MODELS = ['models/arith-char', 'models/english-char'];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, rows?: number[], width = 0): number {
  let m = 0;
  if (rows) {
    for (const r of rows) for (let j = 0; j < width; j++) m = Math.max(m, Math.abs(a[r * width + j] - b[r * width + j]));
    return m;
  }
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Left-padded batch of random real prompts (different lengths). */
function batchOf(rng: Rng, lens: number[], V: number) {
  const rows = lens.map((n) => Array.from({ length: n }, () => 1 + rng.int(V - 1)));
  return packLeft(rows, 0);
}

/** Positions holding real tokens (the only ones whose logits mean anything). */
function realRows(mask: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

function randomFactors(adapter: LoraAdapter, seed: number, std: number): Map<string, LoraFactors> {
  const rng = new Rng(seed);
  const f = new Map<string, LoraFactors>();
  for (const m of adapter.modules) {
    const a = Float32Array.from({ length: m.inDim * adapter.config.rank }, () => rng.normal() / Math.sqrt(m.inDim));
    const b = Float32Array.from({ length: adapter.config.rank * m.outDim }, () => rng.normal() * std);
    f.set(m.name, { a, b });
  }
  return f;
}

test('LoRA targets and rank are checked against the family (exit-2 errors naming the valid values)', () => {
  const facts = { modelType: 'gpt2', nLayer: 2, nEmbd: 64 };
  assert.deepEqual(
    loraModules(facts, null, 8).map((m) => m.name),
    ['h.0.attn.c_attn', 'h.1.attn.c_attn'],
  ); // PEFT's gpt2 default
  const all = loraModules(facts, ['c_attn', 'c_proj', 'c_fc'], 8);
  assert.equal(all.length, 8); // c_proj is both attn.c_proj and mlp.c_proj, as PEFT's suffix match
  assert.deepEqual(
    all.filter((m) => m.layer === 0).map((m) => [m.name, m.inDim, m.outDim]),
    [
      ['h.0.attn.c_attn', 64, 192],
      ['h.0.attn.c_proj', 64, 64],
      ['h.0.mlp.c_fc', 64, 256],
      ['h.0.mlp.c_proj', 256, 64],
    ],
  );
  assert.throws(
    () => loraModules(facts, ['q_proj'], 8),
    (e: Error) => e instanceof UsageError && /valid names: c_attn, c_proj, c_fc/.test(e.message),
  );
  assert.throws(() => loraModules(facts, null, 0), UsageError);
  assert.throws(
    () => loraModules(facts, null, 65),
    (e: Error) => e instanceof UsageError && /1\.\.64/.test(e.message),
  );
  assert.equal(loraModules(facts, null, 64).length, 2);
  assert.throws(() => loraModules({ ...facts, modelType: 'mistral' }, null, 8), UsageError);
});

test('LoRA init: B = 0 and A Kaiming-uniform (|A| ≤ 1/sqrt(in), variance 1/(3·in))', async () => {
  await selectBackend();
  const ad = new LoraAdapter({ modelType: 'gpt2', nLayer: 2, nEmbd: 64 }, { rank: 8, alpha: 16, targets: ['c_fc', 'c_proj'] }, 3);
  for (const m of ad.modules) {
    const f = ad.factors().get(m.name)!;
    assert.ok(f.b.every((v) => v === 0));
    const bound = 1 / Math.sqrt(m.inDim);
    assert.ok(f.a.every((v) => Math.abs(v) <= bound));
    const varA = f.a.reduce((s, v) => s + v * v, 0) / f.a.length;
    assert.ok(Math.abs(varA / ((bound * bound) / 3) - 1) < 0.15, `var ${varA}`);
  }
  assert.equal(ad.scale, 2);
  ad.dispose();
});

for (const dir of MODELS) {
  test(`${dir}: tfjs forward from the ONNX initializers with B = 0 equals the ONNX session (≤ 1e-4, left padding)`, async () => {
    await selectBackend();
    const base = loadFrozenModel(dir);
    const facts = readConfig(dir);
    const ad = new LoraAdapter(facts, { rank: 8, alpha: 16, targets: ['c_attn', 'c_proj', 'c_fc'] }, 1);
    const s = await LmSession.open(dir);
    const p = batchOf(new Rng(5), [30, 17, 24], facts.vocabSize);
    const out = await s.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const ref = tf.tidy(() => loraForward(base, ad, p.batch, p.len, p.ids, p.mask).logits.dataSync().slice());
    const diff = maxAbsDiff(out.logits, ref, realRows(p.mask), facts.vocabSize);
    console.log(`${dir}: B=0 tfjs vs ONNX max |Δlogit| = ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-4, `logits differ by ${diff}`);
    await s.release();
    ad.dispose();
  });

  test(`${dir}: ONNX with low-rank branches equals the tfjs LoRA forward for random A, B (full pass, KV cache, left padding)`, async () => {
    await selectBackend();
    const base = loadFrozenModel(dir);
    const facts = readConfig(dir);
    const V = facts.vocabSize;
    const ad = new LoraAdapter(facts, { rank: 4, alpha: 8, targets: ['c_attn', 'c_proj', 'c_fc', 'lm_head'] }, 2);
    ad.setFactors(randomFactors(ad, 7, 0.3));
    const s = await openLoraSession(dir, ad);
    const plain = await LmSession.open(dir);
    const p = batchOf(new Rng(6), [26, 11, 19], V);
    const rows = realRows(p.mask);
    const ref = tf.tidy(() => loraForward(base, ad, p.batch, p.len, p.ids, p.mask).logits.dataSync().slice());
    const full = await s.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const dFull = maxAbsDiff(full.logits, ref, rows, V);
    // the adapter must matter, or equality would prove nothing
    const baseOut = await plain.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const moved = maxAbsDiff(full.logits, baseOut.logits, rows, V);
    // KV cache: the first 20 columns in one call, then one column at a time
    const B = p.batch,
      S = p.len;
    const cols = (a: number, b: number) => Array.from({ length: B }, (_, r) => Array.from(p.ids.subarray(r * S + a, r * S + b))).flat();
    const mcols = (b: number) => Array.from({ length: B }, (_, r) => Array.from(p.mask.subarray(r * S, r * S + b))).flat();
    let out = await s.forward({ batch: B, inputIds: cols(0, 20), attentionMask: mcols(20) });
    const stepped = new Float32Array(B * S * V);
    for (let r = 0; r < B; r++) stepped.set(out.logits.subarray(r * 20 * V, (r + 1) * 20 * V), r * S * V);
    for (let t = 20; t < S; t++) {
      out = await s.forward({ batch: B, inputIds: cols(t, t + 1), attentionMask: mcols(t + 1), past: out.present });
      for (let r = 0; r < B; r++) stepped.set(out.logits.subarray(r * V, (r + 1) * V), (r * S + t) * V);
    }
    const dKv = maxAbsDiff(stepped, ref, rows, V);
    console.log(
      `${dir}: random A,B ONNX vs tfjs max |Δlogit| full ${dFull.toExponential(2)}, KV ${dKv.toExponential(2)}; adapter moves logits by ${moved.toFixed(2)}`,
    );
    assert.ok(moved > 0.5, `adapter changes logits by only ${moved}`);
    assert.ok(dFull <= 1e-4, `full pass differs by ${dFull}`);
    assert.ok(dKv <= 1e-4, `KV-cached pass differs by ${dKv}`);
    // new factors take effect at the next forward, without reopening the session
    ad.setFactors(randomFactors(ad, 8, 0.3));
    ad.feedsInto(s);
    const again = await s.forward({ batch: B, inputIds: p.ids, attentionMask: p.mask });
    const ref2 = tf.tidy(() => loraForward(base, ad, B, S, p.ids, p.mask).logits.dataSync().slice());
    assert.ok(maxAbsDiff(again.logits, ref2, rows, V) <= 1e-4);
    await s.release();
    await plain.release();
    ad.dispose();
  });
}
