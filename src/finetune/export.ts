/**
 * Exporting a LoRA run (issue 11):
 *  - merged: the base model folder with W ← W + (alpha/r)·A·B folded into the ONNX
 *    initializers of every adapted MatMul (same graph, inputs and outputs, so transformers.js
 *    and onnxruntime load it as they load the base), tokenizer/config files copied, and a
 *    README naming the run and the base model's sha256;
 *  - PEFT: adapter_config.json + adapter_model.safetensors in the layout Hugging Face PEFT
 *    loads. GPT-2's Conv1D weights are [in, out] and PEFT wraps them with fan_in_fan_out =
 *    true: lora_A is a Linear(in → r) whose weight is [r, in] = Aᵀ, lora_B a Linear(r → out)
 *    with weight [out, r] = Bᵀ, and PEFT's delta (B_peft·A_peft)ᵀ·alpha/r = (alpha/r)·A·B.
 * Both refuse head runs, a base model whose sha256 differs from the run's, and an existing
 * output folder; the folder is written under a temporary name and renamed into place.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { ONNX_FILE, readConfig, readOnnx, sha256 } from '../lm/folder.js';
import { encodeModel, floatTensor, tensorToFloat32 } from '../lm/onnx-graph.js';
import { type NamedArray, encodeSafetensors } from '../lm/safetensors.js';
import { resolveModelDir } from '../lm/resolve.js';
import { loraFamily } from '../lm/lora-spec.js';
import { loadLatestCheckpoint } from './checkpoint.js';
import { readRunConfig } from './run.js';
import { LoraAdapter } from './lora.js';

export interface ExportResult {
  out: string;
  files: string[];
  baseModel: string;
  baseSha256: string;
  step: number;
}

interface LoadedRun {
  modelDir: string;
  modelSpec: string;
  baseSha256: string;
  adapter: LoraAdapter;
  step: number;
}

async function loadLoraRun(runDir: string, what: string): Promise<LoadedRun> {
  const cfg = readRunConfig(runDir);
  if (cfg.adapter.kind !== 'lora')
    throw new UsageError(
      `${what} needs a LoRA run: ${runDir} trained the head on the final hidden state (adapter.kind head), which is no weight update of the model; train with --set adapter.kind=lora`,
    );
  const modelDir = await resolveModelDir(cfg.model);
  const facts = readConfig(modelDir);
  const { bytes } = readOnnx(modelDir);
  const baseSha256 = sha256(bytes);
  const ck = loadLatestCheckpoint(runDir);
  const dir = path.join(ck.dir, 'head');
  if (!existsSync(path.join(dir, 'adapter.json'))) throw new UsageError(`${ck.dir} holds no adapter (not a LoRA checkpoint)`);
  // refuses a base model whose file changed since training (sha256 in the adapter manifest)
  const { adapter } = LoraAdapter.load(dir, facts, { sha256: baseSha256 });
  return { modelDir, modelSpec: cfg.model, baseSha256, adapter, step: ck.step };
}

function freshOut(out: string): string {
  if (existsSync(out)) throw new UsageError(`${out} already exists; exports never overwrite, choose another --out`);
  const tmp = `${out.replace(/[/\\]+$/, '')}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return tmp;
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? path.join(prefix, e.name) : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** W + (alpha/r)·A·B for every adapted module, as new ONNX bytes. */
export function mergedOnnx(modelDir: string, adapter: LoraAdapter): Uint8Array {
  const { model } = readOnnx(modelDir);
  const inits = model.graph!.initializer!;
  const f = adapter.factors();
  const r = adapter.config.rank;
  for (const m of adapter.modules) {
    const suffix = `${m.name}.weight`;
    const idx = inits.findIndex((t) => t.name === suffix || t.name!.endsWith('.' + suffix));
    if (idx < 0) throw new UsageError(`${modelDir}: no initializer ${suffix} to merge into`);
    const t = inits[idx];
    const dims = (t.dims ?? []).map(Number);
    if (dims.join('x') !== `${m.inDim}x${m.outDim}`)
      throw new UsageError(`${modelDir}: ${t.name} has shape ${dims.join('x')}, expected ${m.inDim}x${m.outDim}`);
    const w = Float32Array.from(tensorToFloat32(t));
    const { a, b } = f.get(m.name)!;
    // accumulate in float64 per output, then one float32 rounding
    for (let i = 0; i < m.inDim; i++) {
      for (let o = 0; o < m.outDim; o++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += a[i * r + k] * b[k * m.outDim + o];
        w[i * m.outDim + o] = w[i * m.outDim + o] + adapter.scale * s;
      }
    }
    inits[idx] = floatTensor(t.name!, dims, w);
  }
  return encodeModel(model);
}

export async function exportMerged(runDir: string, out: string): Promise<ExportResult> {
  const run = await loadLoraRun(runDir, 'export');
  const tmp = freshOut(out);
  try {
    const files: string[] = [];
    for (const rel of listFiles(run.modelDir)) {
      if (rel === ONNX_FILE || rel === 'README.md' || rel.startsWith('onnx' + path.sep)) continue;
      mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
      copyFileSync(path.join(run.modelDir, rel), path.join(tmp, rel));
      files.push(rel);
    }
    mkdirSync(path.join(tmp, 'onnx'));
    writeFileSync(path.join(tmp, ONNX_FILE), mergedOnnx(run.modelDir, run.adapter));
    files.push(ONNX_FILE);
    const a = run.adapter;
    writeFileSync(
      path.join(tmp, 'README.md'),
      [
        `# ${path.basename(path.resolve(out))}`,
        '',
        `Merged by \`flowtune export\` from run \`${runDir}\` (checkpoint step ${run.step}).`,
        '',
        `- base model: \`${run.modelSpec}\`, onnx/model.onnx sha256 \`${run.baseSha256}\``,
        `- LoRA: rank ${a.config.rank}, alpha ${a.config.alpha} (scale ${a.scale}), targets ${a.targets.join(', ')} (${a.modules.length} modules)`,
        "- every adapted weight is W + (alpha/rank)·A·B; graph, inputs and outputs are the base model's, so it loads as the base does (transformers.js layout).",
        '',
      ].join('\n'),
    );
    files.push('README.md');
    renameSync(tmp, out);
    return { out, files: files.sort(), baseModel: run.modelSpec, baseSha256: run.baseSha256, step: run.step };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    run.adapter.dispose();
  }
}

/** PEFT tensors: key → [r, in] (lora_A) / [out, r] (lora_B). */
export function peftTensors(adapter: LoraAdapter): Map<string, NamedArray> {
  const t = new Map<string, NamedArray>();
  const r = adapter.config.rank;
  for (const [name, { a, b }] of adapter.factors()) {
    const m = adapter.modules.find((x) => x.name === name)!;
    const at = new Float32Array(r * m.inDim);
    for (let i = 0; i < m.inDim; i++) for (let k = 0; k < r; k++) at[k * m.inDim + i] = a[i * r + k];
    const bt = new Float32Array(m.outDim * r);
    for (let k = 0; k < r; k++) for (let o = 0; o < m.outDim; o++) bt[o * r + k] = b[k * m.outDim + o];
    t.set(`base_model.model.${m.peftPath}.lora_A.weight`, { shape: [r, m.inDim], data: at });
    t.set(`base_model.model.${m.peftPath}.lora_B.weight`, { shape: [m.outDim, r], data: bt });
  }
  return t;
}

export async function exportPeft(runDir: string, out: string): Promise<ExportResult> {
  const run = await loadLoraRun(runDir, 'export --peft');
  const tmp = freshOut(out);
  try {
    const a = run.adapter;
    const fam = loraFamily(readConfig(run.modelDir));
    const config = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: run.modelSpec,
      r: a.config.rank,
      lora_alpha: a.config.alpha,
      target_modules: a.targets,
      fan_in_fan_out: fam.fanInFanOut,
      lora_dropout: 0,
      bias: 'none',
      inference_mode: true,
      init_lora_weights: true,
      modules_to_save: null,
    };
    writeFileSync(path.join(tmp, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
    writeFileSync(path.join(tmp, 'adapter_model.safetensors'), encodeSafetensors(peftTensors(a), { format: 'pt' }));
    writeFileSync(
      path.join(tmp, 'README.md'),
      [
        `# PEFT LoRA adapter`,
        '',
        `Written by \`flowtune export --peft\` from run \`${runDir}\` (checkpoint step ${run.step}); base model \`${run.modelSpec}\`, onnx/model.onnx sha256 \`${run.baseSha256}\`.`,
        '',
        '```python',
        'from peft import PeftModel',
        `model = PeftModel.from_pretrained(base_model, "${path.basename(path.resolve(out))}")`,
        '```',
        '',
      ].join('\n'),
    );
    renameSync(tmp, out);
    return {
      out,
      files: ['README.md', 'adapter_config.json', 'adapter_model.safetensors'],
      baseModel: run.modelSpec,
      baseSha256: run.baseSha256,
      step: run.step,
    };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    run.adapter.dispose();
  }
}
