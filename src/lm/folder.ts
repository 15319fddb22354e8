/**
 * Model folders in the transformers.js layout:
 *   config.json (model_type gpt2), tokenizer.json, tokenizer_config.json,
 *   generation_config.json, onnx/model.onnx
 * Written from in-memory weights; read back (config + graph facts) for `model inspect` and
 * for the session wrapper. Every missing or unreadable file is a UsageError (exit code 2).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import type { GptConfig, GptWeights } from './gpt.js';
import { type ModelProto, DT, decodeModel, tensorToFloat32 } from './onnx-graph.js';

export const ONNX_FILE = path.join('onnx', 'model.onnx');

/** transformers.js's dtype option → the file-name suffix it loads (onnx/model{suffix}.onnx). */
export const DTYPE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
export type Dtype = keyof typeof DTYPE_SUFFIX;
/** Decoder graph names, in the order they are looked for: Optimum's single graph, then the merged decoder. */
export const GRAPH_NAMES = ['model', 'decoder_model_merged'] as const;

/** Families flowtune runs, by config.json model_type. */
export const SUPPORTED_MODEL_TYPES: Record<string, 'gpt2' | 'llama'> = { gpt2: 'gpt2', llama: 'llama', qwen2: 'llama' };

/** The family of a config's model_type, or exit 2 listing the supported ones. */
export function modelFamily(f: ModelFacts): 'gpt2' | 'llama' {
  const fam = SUPPORTED_MODEL_TYPES[f.modelType];
  if (!fam)
    throw new UsageError(
      `config.json: model_type "${f.modelType}" is not supported (supported: ${Object.keys(SUPPORTED_MODEL_TYPES).join(', ')})`,
    );
  return fam;
}

/**
 * The graph file (relative to the folder) for a dtype: onnx/model{suffix}.onnx, else
 * onnx/decoder_model_merged{suffix}.onnx, else the same names at the top (optimum-cli's layout).
 */
export function findOnnxFile(dir: string, dtype: Dtype = 'fp32'): string {
  if (!(dtype in DTYPE_SUFFIX)) throw new UsageError(`dtype "${dtype}" is not one of ${Object.keys(DTYPE_SUFFIX).join(', ')}`);
  // transformers.js folders keep graphs under onnx/; optimum-cli writes them next to config.json
  const names = GRAPH_NAMES.map((n) => `${n}${DTYPE_SUFFIX[dtype]}.onnx`);
  const tried = [...names.map((n) => path.join('onnx', n)), ...names];
  for (const f of tried) if (existsSync(path.join(dir, f))) return f;
  throw new UsageError(`${dir}: missing ${tried[0]} (or ${tried.slice(1).join(', ')})`);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What a model folder's config.json says, normalized over GPT-2-like naming variants. */
export interface ModelFacts {
  modelType: string;
  vocabSize: number;
  nLayer: number;
  /** attention (query) heads */
  nHead: number;
  /** key/value heads (grouped-query attention: fewer than nHead; the KV cache has this many) */
  nKvHead: number;
  nEmbd: number;
  headDim: number;
  nCtx: number;
  eosTokenId: number;
  padTokenId: number;
  bosTokenId: number;
  raw: Record<string, any>;
}

export function readConfig(dir: string): ModelFacts {
  const file = path.join(dir, 'config.json');
  if (!existsSync(dir)) throw new UsageError(`${dir}: no such model folder`);
  if (!existsSync(file)) throw new UsageError(`${dir}: missing config.json`);
  let raw: Record<string, any>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const pick = (...keys: string[]): number | undefined => {
    for (const k of keys) if (typeof raw[k] === 'number') return raw[k];
    return undefined;
  };
  const nLayer = pick('n_layer', 'num_hidden_layers', 'num_layers');
  const nHead = pick('n_head', 'num_attention_heads', 'num_heads');
  const nEmbd = pick('n_embd', 'hidden_size', 'd_model');
  const vocabSize = pick('vocab_size');
  if (nLayer === undefined || nHead === undefined || nEmbd === undefined || vocabSize === undefined)
    throw new UsageError(`${file}: needs vocab_size, n_layer, n_head and n_embd (or their HF synonyms)`);
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  const nKv = pick('num_key_value_heads') ?? nHead;
  return {
    modelType: String(raw.model_type ?? 'unknown'),
    vocabSize,
    nLayer,
    nHead,
    nKvHead: nKv,
    nEmbd,
    headDim: pick('head_dim') ?? nEmbd / nHead,
    nCtx: pick('n_positions', 'n_ctx', 'max_position_embeddings') ?? 1024,
    eosTokenId: typeof eos === 'number' ? eos : 0,
    padTokenId: pick('pad_token_id') ?? (typeof eos === 'number' ? eos : 0),
    bosTokenId: pick('bos_token_id') ?? (typeof eos === 'number' ? eos : 0),
    raw,
  };
}

export function readOnnx(dir: string, dtype: Dtype = 'fp32'): { bytes: Uint8Array; model: ModelProto; rel: string } {
  if (!existsSync(dir)) throw new UsageError(`${dir}: no such model folder`);
  const rel = findOnnxFile(dir, dtype);
  const file = path.join(dir, rel);
  const bytes = readFileSync(file);
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new UsageError(`${file}: not a readable ONNX model (${(err as Error).message.split('\n')[0]})`);
  }
  if (!model.graph || (model.graph.node ?? []).length === 0) throw new UsageError(`${file}: ONNX model has no graph`);
  return { bytes, model, rel };
}

export interface IoInfo {
  name: string;
  type: string;
  dims: (number | string)[];
}

export function graphIo(model: ModelProto): { inputs: IoInfo[]; outputs: IoInfo[] } {
  const dtName: Record<number, string> = {
    [DT.FLOAT]: 'float32',
    [DT.INT64]: 'int64',
    [DT.INT32]: 'int32',
    [DT.BOOL]: 'bool',
    [DT.FLOAT16]: 'float16',
  };
  const conv = (v: any): IoInfo => ({
    name: v.name,
    type: dtName[v.type?.tensorType?.elemType ?? 0] ?? String(v.type?.tensorType?.elemType),
    dims: (v.type?.tensorType?.shape?.dim ?? []).map((d: any) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0))),
  });
  const inits = new Set((model.graph!.initializer ?? []).map((t) => t.name));
  return {
    inputs: (model.graph!.input ?? []).filter((v) => !inits.has(v.name!)).map(conv),
    outputs: (model.graph!.output ?? []).map(conv),
  };
}

export function initializerParamCount(model: ModelProto): number {
  const weightTypes = new Set<number>([DT.FLOAT, DT.FLOAT16, DT.BFLOAT16, DT.INT8, DT.UINT8]);
  let n = 0;
  // Each initializer once: tied embeddings are one tensor (read through a Transpose).
  for (const t of model.graph!.initializer ?? []) {
    const size = (t.dims ?? []).reduce((a: number, b) => a * Number(b), 1);
    // Graph constants (shape vectors, scalars, rotary frequency tables) are not parameters.
    if (!weightTypes.has(t.dataType ?? 0) || size <= 1) continue;
    if (/^const_|inv_freq|(cos|sin)_cached/.test(t.name ?? '')) continue;
    n += size;
  }
  return n;
}

/** Reads a flowtune-written model's weights back from its ONNX initializers. */
export function readGptWeights(model: ModelProto, names: string[]): GptWeights {
  const w: GptWeights = new Map();
  const byName = new Map((model.graph!.initializer ?? []).map((t) => [t.name!, t]));
  for (const name of names) {
    const t = byName.get(name);
    if (!t) throw new UsageError(`ONNX model has no initializer ${name} (not written by flowtune?)`);
    w.set(name, { shape: (t.dims ?? []).map(Number), data: tensorToFloat32(t) });
  }
  return w;
}

export function configFromFacts(f: ModelFacts): GptConfig {
  return {
    vocabSize: f.vocabSize,
    nLayer: f.nLayer,
    nHead: f.nHead,
    nEmbd: f.nEmbd,
    nCtx: f.nCtx,
    lnEps: typeof f.raw.layer_norm_epsilon === 'number' ? f.raw.layer_norm_epsilon : 1e-5,
    bosTokenId: f.bosTokenId,
    eosTokenId: f.eosTokenId,
    padTokenId: f.padTokenId,
  };
}
