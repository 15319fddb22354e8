/**
 * The LLaMA family as Optimum exports it (RMSNorm, rotary, grouped-query attention, SwiGLU,
 * untied head, position_ids), with a byte-level BPE tokenizer in Hugging Face format: the
 * writer against an independent plain-JS forward, padded batches against single rows,
 * transformers.js greedy generation against our sampler (single and merged decoder, external
 * data), BOS and special tokens, the calculator on " =" tokens, and a short training run
 * checked against the exact posterior.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Rng } from '../src/core/rng.js';
import { writeTempLlama, type TempLlama } from '../src/lmbuild/fixtures.js';
import { llamaReferenceForward } from '../src/lmbuild/llama-reference.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';
import { naivePrefixRewards, prefixRewards, scoreBatch, statesOf } from '../src/lm/scorer.js';
import { encodeX, loadHfTokenizer } from '../src/lm/tokenizer.js';
import { sampleZ } from '../src/finetune/rollout.js';
import { LmTrainer } from '../src/finetune/trainer.js';
import { zConstraints } from '../src/finetune/setup.js';
import { exactPosterior } from '../src/finetune/posterior.js';
import { validate } from '../src/finetune/config-loader.js';
import { trainConfigSchema } from '../src/finetune/schema.js';
import { hfGreedy } from './helpers/hf-greedy.js';

const TOL = 1e-4;
const temps: TempLlama[] = [];
const make = (...a: Parameters<typeof writeTempLlama>) => {
  const m = writeTempLlama(...a);
  temps.push(m);
  return m;
};
after(() => temps.forEach((m) => m.cleanup()));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const TEXT = 'Question: 3 + 9 = ? Answer: 3 + 9 = 12.';

for (const [label, over] of [
  ['llama, GQA 4/2, untied head', {}],
  ['qwen2 (q/k/v biases), GQA 4/1', { modelType: 'qwen2', attentionBias: true, nKvHead: 1 }],
  ['llama, tied embeddings, MHA', { tieWordEmbeddings: true, nKvHead: 4 }],
] as const) {
  test(`${label}: the ONNX graph equals the plain-JS reference forward (logits, hidden)`, async () => {
    const m = make(11, { over: over as any });
    const s = await LmSession.open(m.dir);
    assert.equal(s.positions, 'position_ids');
    const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
    const ids = tok.encode(TEXT);
    const out = await s.forward({ batch: 1, inputIds: ids, attentionMask: ids.map(() => 1) });
    const ref = llamaReferenceForward(m.config, m.weights, ids);
    assert.ok(maxDiff(out.logits, ref.logits) < TOL, `logits ${maxDiff(out.logits, ref.logits)}`);
    assert.ok(maxDiff(out.hidden!, ref.hidden) < TOL);
    // and the logits are far from uniform (the check would prove little otherwise)
    assert.ok(Math.max(...ref.logits) - Math.min(...ref.logits) > 3);
    await s.release();
  });
}

test('llama: padded batches (sampler, scorer, prefix rewards, statesOf) equal single unpadded rows', async () => {
  const m = make(12);
  const s = await LmSession.open(m.dir);
  const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
  const V = m.config.vocabSize;
  const prompts = ['Question: 3 + 9', 'The', 'Many more go'].map((t) => tok.encode(t));
  const r = await sample(s, prompts, { maxNewTokens: 8, temperature: 0.9, rng: new Rng(2), keepLogits: true, keepHidden: false });
  for (let b = 0; b < prompts.length; b++) {
    const seq = [...prompts[b], ...Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b]))];
    const ref = llamaReferenceForward(m.config, m.weights, seq);
    for (let t = 0; t < r.lengths[b]; t++) {
      const pos = prompts[b].length - 1 + t;
      assert.ok(
        maxDiff(r.baseLogits!.subarray((b * r.steps + t) * V, (b * r.steps + t + 1) * V), ref.logits.subarray(pos * V, (pos + 1) * V)) <
          TOL,
        `row ${b} step ${t}`,
      );
    }
  }
  const ys = ['.', ' 12.', ' The answer'].map((t) => tok.encode(t));
  const zs = [tok.encode(' = 12'), [], tok.encode(' unreported')];
  const batched = await scoreBatch(s, prompts, ys);
  for (let b = 0; b < prompts.length; b++)
    assert.ok(Math.abs(batched.total[b] - (await scoreBatch(s, [prompts[b]], [ys[b]])).total[0]) < TOL);
  const pr = await prefixRewards(s, prompts, zs, ys);
  const naive = await naivePrefixRewards(s, prompts, zs, ys);
  for (let b = 0; b < prompts.length; b++) assert.ok(maxDiff(pr.rewards[b], naive[b]) < TOL, `prefix rewards row ${b}`);
  const st = await statesOf(s, prompts, zs);
  for (let b = 0; b < prompts.length; b++) {
    const ref = llamaReferenceForward(m.config, m.weights, [...prompts[b], ...zs[b]]);
    for (let t = 0; t <= zs[b].length; t++) {
      const pos = prompts[b].length - 1 + t,
        row = st.offsets[b] + t;
      assert.ok(maxDiff(st.logits.subarray(row * V, (row + 1) * V), ref.logits.subarray(pos * V, (pos + 1) * V)) < TOL);
    }
  }
  await s.release();
});

async function ourGreedy(dir: string, prompts: string[], maxNew: number): Promise<number[][]> {
  const s = await LmSession.open(dir);
  const tok = await loadHfTokenizer(dir, s.facts.eosTokenId, s.vocabSize);
  // one left-padded batch; BOS in front as transformers.js's tokenizer puts it
  const r = await sample(
    s,
    prompts.map((p) => encodeX(tok, p)),
    { maxNewTokens: maxNew, temperature: 0, keepHidden: false },
  );
  await s.release();
  return prompts.map((_, b) => Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b])));
}

for (const [label, opts, extra] of [
  ['onnx/model.onnx with BOS', { bos: true }, {}],
  ['onnx/decoder_model_merged.onnx (use_cache_branch)', { merged: true }, { model_file_name: 'decoder_model_merged' }],
  ['weights in onnx/model.onnx_data', { externalData: true, hiddenOutput: false }, { use_external_data_format: true }],
] as const) {
  test(`transformers.js greedy generation equals our batched greedy sampler: ${label}`, async () => {
    const m = make(13, { ...opts, std: 0.15 });
    const prompts = ['Question: 3 + 9 = ? Answer:', 'The quick', 'She questions the suspension'];
    const ours = await ourGreedy(m.dir, prompts, 16);
    const theirs = await hfGreedy(m.dir, prompts, 16, extra);
    assert.deepEqual(ours, theirs);
    for (const row of ours) assert.ok(row.length >= 6, `row of ${row.length} tokens`);
    assert.notDeepEqual(ours[0], ours[1]);
  });
}

test('BOS as the tokenizer adds it (auto), or as the config says; special and padded ids never enter Z', async () => {
  const withBos = make(14, { bos: true, padVocab: 6 });
  const noBos = make(14, {});
  const a = await loadHfTokenizer(withBos.dir, withBos.config.eosTokenId, withBos.config.vocabSize);
  const bosId = withBos.tokenizer.id('<|begin_of_text|>');
  assert.equal(a.bosTokenId, bosId);
  assert.deepEqual(encodeX(a, 'The'), [bosId, ...a.encode('The')]);
  const off = await loadHfTokenizer(withBos.dir, withBos.config.eosTokenId, withBos.config.vocabSize, { bos: false });
  assert.deepEqual(encodeX(off, 'The'), off.encode('The'));
  const b = await loadHfTokenizer(noBos.dir, noBos.config.eosTokenId, noBos.config.vocabSize);
  assert.equal(b.bosTokenId, null);
  const forced = await loadHfTokenizer(noBos.dir, noBos.config.eosTokenId, noBos.config.vocabSize, {
    bos: true,
    configBosId: noBos.config.bosTokenId,
  });
  assert.equal(encodeX(forced, 'The')[0], noBos.config.bosTokenId);
  // vocab_size padded by 6 beyond the tokenizer's ids: Z may use neither those nor the specials
  const cfg = validate({ objective: 'tb', seed: 0, model: withBos.dir, task: { kind: 'pairs' } }, trainConfigSchema, 'test');
  const c = zConstraints(cfg, a);
  const T = withBos.tokenizer.vocabSize;
  assert.equal(withBos.config.vocabSize, T + 6);
  assert.ok(c.allowedIds);
  const allowed = new Set(c.allowedIds);
  assert.equal(allowed.size, T - 2);
  for (const id of [bosId, withBos.config.eosTokenId, T, T + 5]) assert.ok(!allowed.has(id), `id ${id} allowed`);
  assert.ok(allowed.has(0) && allowed.has(T - 3));
});

test('the calculator fires on decoded text ending in "a op b =" though "=" only lives inside the BPE token " ="', async () => {
  const m = make(15);
  const s = await LmSession.open(m.dir);
  const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
  const eq = tok.encode(' =');
  assert.equal(eq.length, 1);
  assert.notDeepEqual(tok.encode('='), eq); // the id of "=" alone is another token
  // a scripted policy writes " 3 + 9 =" and then stops; the tool must append " 12"
  const script = tok.encode(' 3 + 9 =');
  let calls = 0;
  const V = m.config.vocabSize;
  const policy = (st: { step: number; logits: Float32Array }) => {
    if (st.step === 0) calls++;
    const out = new Float32Array(st.logits.length).fill(-1e9);
    const want = calls === 1 ? script[st.step] : m.config.eosTokenId;
    for (let b = 0; b < out.length / V; b++) out[b * V + want] = 0;
    return out;
  };
  const constraints = { minLength: 0, maxLength: 12, allowedIds: null, tool: 'calculator' as const, stopId: m.config.eosTokenId };
  const [z] = await sampleZ(s, tok, [tok.encode('Question:')], { constraints, temperature: 1, policy, rng: new Rng(0) });
  assert.equal(tok.decode(z.tokens), ' 3 + 9 = 12');
  assert.deepEqual(Array.from(z.isAction), [...script.map(() => 1), ...tok.encode(' 12').map(() => 0)]);
  await s.release();
});

/** The exact posterior check at CI size (as test/train-lm.test.ts does for the GPT). */
for (const [label, opts] of [
  ['llama with BOS', { bos: true }],
  ['llama merged decoder, external data, logits-only (surgery)', { merged: true, externalData: true, hiddenOutput: false }],
] as const) {
  test(`TB on a ${label} fits the exact posterior (TV < 0.05)`, async () => {
    const m = make(16, { ...opts, std: 0.15 });
    const cfg = validate(
      {
        objective: 'tb',
        seed: 0,
        model: m.dir,
        task: { kind: 'pairs', pairs: [{ x: 'Question: 3 + 9 = ? Answer:', y: '. The answer is 12.' }] },
        z: { maxLength: 4, allowed: [' 3', ' +', ' 9', ' ='] },
        reward: { prior: 'allowed', likelihoodWeight: 4 },
        exploration: { epsilon: { start: 0.1, end: 0, horizon: 150 } },
        train: { steps: 300, batchSize: 16, logEvery: 5, checkpointEvery: 20 },
      },
      trainConfigSchema,
      'test',
    );
    const t = await LmTrainer.create(cfg);
    const before = await exactPosterior(t);
    assert.ok(before.klPosteriorPrior > 1, `posterior must be far from the prior: KL ${before.klPosteriorPrior}`);
    let logZ = NaN;
    for (let i = 0; i < 300; i++) logZ = (await t.trainStep()).logZ;
    const r = await exactPosterior(t);
    console.log(
      `# ${label}: TV ${before.tv.toFixed(4)} → ${r.tv.toFixed(4)}, log Z ${logZ.toFixed(4)} vs exact ${r.logZTrue.toFixed(4)}, KL(post‖prior) ${before.klPosteriorPrior.toFixed(3)}`,
    );
    assert.equal(r.sequences, 1 + 4 + 16 + 64 + 256);
    assert.ok(Math.abs(r.policyMass - 1) < 1e-4);
    assert.ok(r.tv < 0.05, `TV ${r.tv}`);
    assert.ok(Math.abs(logZ - r.logZTrue) < 0.1, `log Z ${logZ} vs exact ${r.logZTrue}`);
  });
}

test('model inspect: family, query vs KV heads, parameters (tied once), positions, vocab vs tokenizer, files; bad folders exit 2', async () => {
  const { inspectModel } = await import('../src/lm/inspect.js');
  const { llamaParamCount } = await import('../src/lm/llama.js');
  const { spawnSync } = await import('node:child_process');
  const { readFileSync, writeFileSync } = await import('node:fs');
  const bin = path.resolve('bin/flowtune.js');
  const m = make(17, { merged: true, externalData: true, padVocab: 3, over: { tieWordEmbeddings: true } });
  const info = await inspectModel(m.dir);
  assert.equal(info.family, 'llama');
  assert.equal(info.heads, 4);
  assert.equal(info.kvHeads, 2);
  assert.equal(info.positions, 'position_ids');
  assert.equal(info.vocabSize, m.tokenizer.vocabSize + 3);
  assert.equal(info.tokenizerVocab, m.tokenizer.vocabSize);
  assert.equal(info.specialTokens, 2);
  // embed (tied: once) + per layer 2 norms, q/k/v/o, gate/up/down + final norm, by hand
  const c = m.config,
    d = c.nEmbd,
    kv = c.nKvHead * c.headDim,
    q = c.nHead * c.headDim,
    f = c.intermediateSize;
  const byHand = c.vocabSize * d + c.nLayer * (2 * d + d * q + 2 * d * kv + q * d + 3 * d * f) + d;
  assert.equal(llamaParamCount(c), byHand);
  assert.equal(info.parameters, byHand);
  assert.deepEqual(info.files.slice(0, 2), [
    path.join('onnx', 'decoder_model_merged.onnx'),
    path.join('onnx', 'decoder_model_merged.onnx_data'),
  ]);
  const run = () => spawnSync(process.execPath, [bin, 'model', 'inspect', m.dir], { encoding: 'utf8' });
  const ok = run();
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /4 query heads, 2 key\/value heads \(grouped-query, 2 per KV head\)/);
  assert.match(ok.stdout, /position_ids input/);
  // a tokenizer with more ids than the model → exit 2
  const cfgFile = path.join(m.dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, vocab_size: m.tokenizer.vocabSize - 5 }));
  let r = run();
  assert.equal(r.status, 2);
  assert.match(r.stderr, /tokenizer and model do not match/);
  // an unsupported model_type → exit 2 listing the supported families
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, model_type: 'mamba' }));
  r = run();
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /model_type "mamba" is not supported \(supported: gpt2, llama, qwen2\)/);
});

test('dtype fp16: model_fp16.onnx with float16 weights, KV cache and logits; transformers.js dtype fp16 generates the same', async () => {
  const { writeLlamaFolder } = await import('../src/lmbuild/model-folder.js');
  const m = make(18, { std: 0.15 });
  writeLlamaFolder(m.dir, m.config, m.weights, { tokenizer: m.tokenizer, fp16: true });
  const s32 = await LmSession.open(m.dir);
  const s16 = await LmSession.open(m.dir, { dtype: 'fp16' });
  assert.equal(s32.kvType, 'float32');
  assert.equal(s16.kvType, 'float16');
  assert.deepEqual(s16.files, [path.join('onnx', 'model_fp16.onnx')]);
  const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
  const ids = tok.encode(TEXT);
  const a = await s32.forward({ batch: 1, inputIds: ids, attentionMask: ids.map(() => 1) });
  const b = await s16.forward({ batch: 1, inputIds: ids, attentionMask: ids.map(() => 1) });
  const d16 = maxDiff(a.logits, b.logits);
  assert.ok(d16 > 0 && d16 < 0.05, `fp16 vs fp32 logits ${d16}`); // float16 rounding, not garbage
  // the cached (fp16 K/V) prefix rewards agree with one forward per prefix at fp16 precision
  const prompts = [tok.encode('Question: 3 + 9'), tok.encode('The')];
  const zs = [tok.encode(' = 12'), tok.encode(' quick')];
  const ys = [tok.encode('.'), tok.encode(' brown fox')];
  const pr = await prefixRewards(s16, prompts, zs, ys);
  const naive = await naivePrefixRewards(s16, prompts, zs, ys);
  for (let r = 0; r < 2; r++) assert.ok(maxDiff(pr.rewards[r], naive[r]) < 0.02, `row ${r}: ${maxDiff(pr.rewards[r], naive[r])}`);
  const prompts2 = ['Question: 3 + 9 = ? Answer:', 'The quick'];
  const r = await sample(
    s16,
    prompts2.map((p) => tok.encode(p)),
    { maxNewTokens: 12, temperature: 0, keepHidden: false },
  );
  const ours = prompts2.map((_, i) => Array.from(r.tokens.subarray(i * r.steps, i * r.steps + r.lengths[i])));
  const theirs = await hfGreedy(m.dir, prompts2, 12, { dtype: 'fp16' });
  assert.deepEqual(ours, theirs);
  await s32.release();
  await s16.release();
});

test('a hub id resolves offline from the transformers.js cache folder; not cached → one line naming the cache', async () => {
  const { resolveModelDir } = await import('../src/lm/resolve.js');
  const { UsageError } = await import('../src/core/errors.js');
  const m = make(19, { merged: true });
  const cacheDir = path.dirname(path.dirname(m.dir)); // <tmp>/flowtune-llama-XXX/model → cache <tmp>, id flowtune-llama-XXX/model
  const id = path.relative(cacheDir, m.dir);
  assert.equal(await resolveModelDir(id, { cacheDir, allowRemote: false }), path.join(cacheDir, id));
  await assert.rejects(
    resolveModelDir('someorg/not-cached', { cacheDir, allowRemote: false }),
    (e: Error) => e instanceof UsageError && e.message.includes(path.join(cacheDir, 'someorg/not-cached')),
  );
});

test('z.allowed / z.stop entries that are not one token of this tokenizer: one line suggesting the BPE form', async () => {
  const { UsageError } = await import('../src/core/errors.js');
  const m = make(20);
  const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
  assert.equal(tok.encode(' answer').length, 1);
  assert.ok(tok.encode('answer').length > 1);
  const cfg = validate(
    { objective: 'tb', seed: 0, model: m.dir, task: { kind: 'pairs' }, z: { allowed: [' =', 'answer'] } },
    trainConfigSchema,
    'test',
  );
  assert.throws(
    () => zConstraints(cfg, tok),
    (e: Error) =>
      e instanceof UsageError &&
      /z\.allowed: "answer" is \d+ tokens of this model's tokenizer, not one \(this tokenizer has " answer" as one token\)/.test(e.message),
  );
});

test('dtype q8: model_quantized.onnx with an int8 LM head (DynamicQuantizeLinear → MatMulInteger): surgery finds the hidden state', async () => {
  const { writeLlamaFolder } = await import('../src/lmbuild/model-folder.js');
  const m = make(21, { std: 0.15 });
  writeLlamaFolder(m.dir, m.config, m.weights, { tokenizer: m.tokenizer, int8Head: true, hiddenOutput: false });
  const s32 = await LmSession.open(m.dir);
  const s8 = await LmSession.open(m.dir, { dtype: 'q8' });
  assert.deepEqual(s8.files, [path.join('onnx', 'model_quantized.onnx')]);
  assert.equal(s8.hiddenName, 'last_hidden_state');
  const tok = await loadHfTokenizer(m.dir, m.config.eosTokenId, m.config.vocabSize);
  const ids = tok.encode(TEXT);
  const a = await s32.forward({ batch: 1, inputIds: ids, attentionMask: ids.map(() => 1) });
  const b = await s8.forward({ batch: 1, inputIds: ids, attentionMask: ids.map(() => 1) });
  assert.ok(maxDiff(a.hidden!, b.hidden!) < 1e-5, 'the hidden state is the same tensor (only the head is quantized)');
  const dq = maxDiff(a.logits, b.logits);
  assert.ok(dq > 0 && dq < 0.25, `int8 head vs float logits ${dq}`);
  await s32.release();
  await s8.release();
});
