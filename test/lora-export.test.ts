import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { selectBackend } from '../src/core/backend.js';
import { Rng } from '../src/core/rng.js';
import { UsageError } from '../src/core/errors.js';
import { readConfig, readGptWeights, readOnnx } from '../src/lm/folder.js';
import { paramShapes } from '../src/lm/gpt.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';
import { packLeft } from '../src/lm/batch.js';
import { CharTokenizer } from '../src/lm/tokenizer.js';
import { loadSafetensors } from '../src/lm/safetensors.js';
import { encodeModel, floatTensor, tensorToFloat32 } from '../src/lm/onnx-graph.js';
import type { LoraFactors } from '../src/lm/lora-graph.js';
import { LoraAdapter, openLoraSession } from '../src/finetune/lora.js';
import { exportMerged, exportPeft } from '../src/finetune/export.js';
import { saveCheckpoint } from '../src/finetune/checkpoint.js';
import { readTrainConfig } from '../src/finetune/run.js';
import { configFromFacts } from '../src/lm/folder.js';
import { hfGreedy } from './helpers/hf-greedy.js';

const MODEL = 'models/arith-char';
const PROMPTS = ['Question: 7 + 5 - 2 = ? Answer:', 'Question: 3 - 1 = ? Answer:', 'Question: 9 + 8 + 1 - 4 = ? Answer: 9 + 8 ='];

/** A run folder as `flowtune train` leaves it (config.yaml + a checkpoint with the adapter), with random non-zero factors. */
function makeRun(root: string, modelDir: string, kind: 'lora' | 'head', seed = 3): { runDir: string; adapter: LoraAdapter } {
  const runDir = path.join(root, `run-${kind}`);
  const cfg = readTrainConfig('configs/posterior-check.yaml', [
    `adapter.kind=${kind}`,
    `model=${modelDir}`,
    'adapter.rank=4',
    'adapter.alpha=8',
  ]);
  cfg.adapter.targets = ['c_attn', 'c_proj', 'c_fc'];
  const facts = readConfig(modelDir);
  const adapter = new LoraAdapter(facts, { rank: 4, alpha: 8, targets: cfg.adapter.targets }, seed);
  const rng = new Rng(seed);
  const f = new Map<string, LoraFactors>();
  for (const m of adapter.modules)
    f.set(m.name, {
      a: Float32Array.from({ length: m.inDim * 4 }, () => rng.normal() / Math.sqrt(m.inDim)),
      b: Float32Array.from({ length: 4 * m.outDim }, () => rng.normal() * 0.15),
    });
  adapter.setFactors(f);
  const sha = readSha(modelDir);
  saveCheckpoint(runDir, 7, (dir) => {
    if (kind === 'lora') adapter.save(path.join(dir, 'head'), { id: modelDir, sha256: sha });
    writeFileSync(path.join(dir, 'state.json'), '{}');
  });
  writeFileSync(path.join(runDir, 'config.yaml'), YAML.stringify(cfg));
  return { runDir, adapter };
}

function readSha(modelDir: string): string {
  return createHashHex(readFileSync(path.join(modelDir, 'onnx', 'model.onnx')));
}

function createHashHex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function ourGreedy(s: LmSession, prompts: string[], maxNew: number): Promise<number[][]> {
  const tok = new CharTokenizer();
  const r = await sample(
    s,
    prompts.map((p) => tok.encode(p)),
    { maxNewTokens: maxNew, temperature: 0, keepHidden: false },
  );
  return prompts.map((_, b) => Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b])));
}

test('export: the merged model equals the LoRA policy (logits ≤ 1e-4) and transformers.js decodes it greedily exactly as the policy does', async () => {
  await selectBackend();
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-export-'));
  try {
    const { runDir, adapter } = makeRun(root, MODEL, 'lora');
    const out = path.join(root, 'merged');
    const r = await exportMerged(runDir, out);
    assert.deepEqual(r.files, [
      'README.md',
      'config.json',
      'generation_config.json',
      path.join('onnx', 'model.onnx'),
      'tokenizer.json',
      'tokenizer_config.json',
      'training.json',
    ]);
    assert.match(readFileSync(path.join(out, 'README.md'), 'utf8'), new RegExp(readSha(MODEL)));
    const policy = await openLoraSession(MODEL, adapter);
    const merged = await LmSession.open(out);
    const base = await LmSession.open(MODEL);
    const tok = new CharTokenizer();
    const p = packLeft(
      PROMPTS.map((x) => tok.encode(x)),
      0,
    );
    const a = await policy.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    const m = await merged.forward({ batch: p.batch, inputIds: p.ids, attentionMask: p.mask });
    let diff = 0;
    for (let i = 0; i < p.mask.length; i++)
      if (p.mask[i]) for (let v = 0; v < 98; v++) diff = Math.max(diff, Math.abs(a.logits[i * 98 + v] - m.logits[i * 98 + v]));
    console.log(`merged vs LoRA-branched ONNX: max |Δlogit| ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-4, `merged logits differ by ${diff}`);
    const ours = await ourGreedy(policy, PROMPTS, 20);
    const hf = await hfGreedy(out, PROMPTS, 20);
    const baseGreedy = await ourGreedy(base, PROMPTS, 20);
    assert.deepEqual(
      hf.map((r2, i) => r2.slice(0, ours[i].length)),
      ours,
    );
    assert.notDeepEqual(ours, baseGreedy, 'the adapter must change greedy decoding, or the check proves nothing');
    // never overwrite
    await assert.rejects(exportMerged(runDir, out), (e: Error) => e instanceof UsageError && /already exists/.test(e.message));
    await policy.release();
    await merged.release();
    await base.release();
    adapter.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('export --peft: PEFT key names and shapes; (B_peft·A_peft)ᵀ·alpha/r is exactly the merged weight update', async () => {
  await selectBackend();
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-peft-'));
  try {
    const { runDir, adapter } = makeRun(root, MODEL, 'lora');
    const peft = path.join(root, 'peft');
    await exportPeft(runDir, peft);
    const cfg = JSON.parse(readFileSync(path.join(peft, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);
    assert.deepEqual(cfg.target_modules, ['c_attn', 'c_proj', 'c_fc']);
    assert.equal(cfg.base_model_name_or_path, MODEL);
    assert.equal(cfg.fan_in_fan_out, true);
    const { tensors } = loadSafetensors(path.join(peft, 'adapter_model.safetensors'));
    const d = 64;
    const expectShapes: Record<string, [number, number]> = {
      'attn.c_attn': [d, 3 * d],
      'attn.c_proj': [d, d],
      'mlp.c_fc': [d, 4 * d],
      'mlp.c_proj': [4 * d, d],
    };
    const keys = [...tensors.keys()].sort();
    const want: string[] = [];
    for (let i = 0; i < 2; i++)
      for (const mod of Object.keys(expectShapes))
        for (const ab of ['A', 'B']) want.push(`base_model.model.transformer.h.${i}.${mod}.lora_${ab}.weight`);
    assert.deepEqual(keys, want.sort());
    // the merged export's weight update, reconstructed from the PEFT tensors PEFT's way
    const merged = path.join(root, 'merged');
    await exportMerged(runDir, merged);
    const names = paramShapes(configFromFacts(readConfig(MODEL))).map(([n]) => n);
    const w0 = readGptWeights(readOnnx(MODEL).model, names);
    const w1 = readGptWeights(readOnnx(merged).model, names);
    let worst = 0,
      moved = 0;
    for (let i = 0; i < 2; i++) {
      for (const [mod, [inD, outD]] of Object.entries(expectShapes)) {
        const A = tensors.get(`base_model.model.transformer.h.${i}.${mod}.lora_A.weight`)!;
        const B = tensors.get(`base_model.model.transformer.h.${i}.${mod}.lora_B.weight`)!;
        assert.deepEqual(A.shape, [4, inD]);
        assert.deepEqual(B.shape, [outD, 4]);
        const before = w0.get(`h.${i}.${mod}.weight`)!.data,
          after = w1.get(`h.${i}.${mod}.weight`)!.data;
        for (let o = 0; o < outD; o++)
          for (let k = 0; k < inD; k++) {
            let s = 0;
            for (let q = 0; q < 4; q++) s += B.data[o * 4 + q] * A.data[q * inD + k];
            const delta = (8 / 4) * s; // (B·A)[o, k] transposed lands at W[k, o]
            worst = Math.max(worst, Math.abs(after[k * outD + o] - before[k * outD + o] - delta));
            moved = Math.max(moved, Math.abs(delta));
          }
      }
    }
    assert.ok(moved > 0.05, `update too small to check (${moved})`);
    assert.ok(worst < 1e-5, `PEFT delta differs from the merged update by ${worst}`);
    adapter.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('export refuses a head run, a changed base model and an existing folder (exit-2 errors)', async () => {
  await selectBackend();
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-export-bad-'));
  try {
    const head = makeRun(root, MODEL, 'head');
    await assert.rejects(
      exportPeft(head.runDir, path.join(root, 'p')),
      (e: Error) => e instanceof UsageError && /adapter\.kind head/.test(e.message),
    );
    await assert.rejects(exportMerged(head.runDir, path.join(root, 'm')), UsageError);
    assert.ok(!existsSync(path.join(root, 'p')) && !existsSync(path.join(root, 'm')));
    // a copy of the base model, trained on, then changed
    const copy = path.join(root, 'model-copy');
    cpSync(MODEL, copy, { recursive: true });
    const run = makeRun(path.join(root, 'r2'), copy, 'lora');
    const { model } = readOnnx(copy);
    const t = model.graph!.initializer!.find((x) => x.name === 'h.0.mlp.c_fc.bias')!;
    const data = Float32Array.from(tensorToFloat32(t));
    data[0] += 1;
    Object.assign(t, floatTensor(t.name!, (t.dims ?? []).map(Number), data));
    writeFileSync(path.join(copy, 'onnx', 'model.onnx'), encodeModel(model));
    await assert.rejects(
      exportMerged(run.runDir, path.join(root, 'm2')),
      (e: Error) => e instanceof UsageError && /not this one/.test(e.message),
    );
    await assert.rejects(exportPeft(run.runDir, path.join(root, 'p2')), UsageError);
    head.adapter.dispose();
    run.adapter.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
