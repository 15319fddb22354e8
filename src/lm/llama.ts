/**
 * The LLaMA family (model_type llama, qwen2 — also what SmolLM2 and Llama-3 exports are):
 * the one description of its shapes and module names that the ONNX writer
 * (src/lmbuild/llama-writer.ts), the plain-JS reference forward, `model inspect` and
 * adapters (LoRA on q_proj … down_proj) share.
 *
 * Block (pre-RMSNorm):  x += o_proj(Attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)));
 *                       x += down_proj(silu(gate_proj(n2)) · up_proj(n2));   h = norm(x)
 * with n1 = input_layernorm(x), n2 = post_attention_layernorm(x), rotary embeddings in the
 * rotate-half layout, grouped-query attention (num_key_value_heads ≤ num_attention_heads;
 * query head j uses KV head ⌊j / (H / H_kv)⌋, HF's repeat_kv), an untied lm_head unless
 * tie_word_embeddings. Qwen2 adds biases to q/k/v_proj. Positions are the position_ids input.
 *
 * Weights are stored like the GPT (gpt.ts): matrices as [in, out] for x·W (HF's Linear stores
 * [out, in]: transpose when loading HF safetensors), under HF's module names.
 */
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import type { GptWeights } from './gpt.js';

export interface LlamaConfig {
  modelType: 'llama' | 'qwen2';
  vocabSize: number;
  nLayer: number;
  /** attention (query) heads */
  nHead: number;
  /** key/value heads (grouped-query attention) */
  nKvHead: number;
  /** hidden_size */
  nEmbd: number;
  /** head_dim (default nEmbd / nHead) */
  headDim: number;
  intermediateSize: number;
  /** max_position_embeddings */
  nCtx: number;
  rmsEps: number;
  ropeTheta: number;
  /** q/k/v_proj biases (Qwen2) */
  attentionBias: boolean;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
}

/** The linear modules of a layer, in HF naming: what a LoRA adapter targets. */
export const LLAMA_ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const LLAMA_MLP_MODULES = ['gate_proj', 'up_proj', 'down_proj'] as const;
export type LlamaModule = (typeof LLAMA_ATTENTION_MODULES)[number] | (typeof LLAMA_MLP_MODULES)[number];

/** Full parameter name of a layer's module weight, e.g. model.layers.3.self_attn.q_proj.weight. */
export function llamaModuleName(layer: number, m: LlamaModule): string {
  const group = (LLAMA_ATTENTION_MODULES as readonly string[]).includes(m) ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${group}.${m}.weight`;
}

/** [in, out] of each module. */
export function llamaModuleShape(c: LlamaConfig, m: LlamaModule): [number, number] {
  const d = c.nEmbd,
    q = c.nHead * c.headDim,
    kv = c.nKvHead * c.headDim,
    f = c.intermediateSize;
  const shapes: Record<LlamaModule, [number, number]> = {
    q_proj: [d, q],
    k_proj: [d, kv],
    v_proj: [d, kv],
    o_proj: [q, d],
    gate_proj: [d, f],
    up_proj: [d, f],
    down_proj: [f, d],
  };
  return shapes[m];
}

export function llamaParamShapes(c: LlamaConfig): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.nEmbd]]];
  for (let i = 0; i < c.nLayer; i++) {
    out.push([`model.layers.${i}.input_layernorm.weight`, [c.nEmbd]]);
    for (const m of [...LLAMA_ATTENTION_MODULES, ...LLAMA_MLP_MODULES]) {
      out.push([llamaModuleName(i, m), llamaModuleShape(c, m)]);
      if (c.attentionBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj'))
        out.push([llamaModuleName(i, m).replace(/weight$/, 'bias'), [llamaModuleShape(c, m)[1]]]);
    }
    out.push([`model.layers.${i}.post_attention_layernorm.weight`, [c.nEmbd]]);
  }
  out.push(['model.norm.weight', [c.nEmbd]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.nEmbd, c.vocabSize]]);
  return out;
}

export function validateLlamaConfig(c: LlamaConfig): void {
  for (const k of ['vocabSize', 'nLayer', 'nHead', 'nKvHead', 'nEmbd', 'headDim', 'intermediateSize', 'nCtx'] as const)
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new UsageError(`model config: ${k} must be a positive integer, got ${c[k]}`);
  if (c.nHead % c.nKvHead !== 0)
    throw new UsageError(`model config: ${c.nHead} attention heads are not a multiple of ${c.nKvHead} KV heads`);
  if (c.headDim % 2 !== 0) throw new UsageError(`model config: head_dim ${c.headDim} must be even (rotary embeddings)`);
}

/** config.json fields (HF naming) of a LLaMA-family model. */
export function llamaHfConfig(c: LlamaConfig): Record<string, unknown> {
  return {
    model_type: c.modelType,
    architectures: [c.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    vocab_size: c.vocabSize,
    hidden_size: c.nEmbd,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.nLayer,
    num_attention_heads: c.nHead,
    num_key_value_heads: c.nKvHead,
    head_dim: c.headDim,
    max_position_embeddings: c.nCtx,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    attention_bias: c.attentionBias,
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    use_cache: true,
  };
}

/** The LLaMA-family config of a config.json (UsageError naming the missing key). */
export function llamaConfigFromHf(raw: Record<string, any>, file = 'config.json'): LlamaConfig {
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number') throw new UsageError(`${file}: needs ${k}`);
    return v;
  };
  const nHead = num('num_attention_heads');
  const nEmbd = num('hidden_size');
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  const modelType = raw.model_type === 'qwen2' ? 'qwen2' : 'llama';
  return {
    modelType,
    vocabSize: num('vocab_size'),
    nLayer: num('num_hidden_layers'),
    nHead,
    nKvHead: num('num_key_value_heads', nHead),
    nEmbd,
    headDim: num('head_dim', nEmbd / nHead),
    intermediateSize: num('intermediate_size'),
    nCtx: num('max_position_embeddings'),
    rmsEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    attentionBias: raw.attention_bias === true || modelType === 'qwen2',
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    bosTokenId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : typeof eos === 'number' ? eos : 0,
    eosTokenId: typeof eos === 'number' ? eos : 0,
    padTokenId: typeof raw.pad_token_id === 'number' ? raw.pad_token_id : typeof eos === 'number' ? eos : 0,
  };
}

/** Random weights: N(0, std) matrices, norms 1 + N(0, 0.1) so that every parameter matters in tests. */
export function initLlamaWeights(c: LlamaConfig, seed: number, std = 0.02): GptWeights {
  validateLlamaConfig(c);
  const rng = new Rng(seed);
  const w: GptWeights = new Map();
  for (const [name, shape] of llamaParamShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) for (let i = 0; i < n; i++) data[i] = 1 + 0.1 * rng.normal();
    else for (let i = 0; i < n; i++) data[i] = rng.normal() * (name.endsWith('.bias') ? 0.1 : std);
    w.set(name, { shape, data });
  }
  return w;
}

export function checkLlamaWeights(c: LlamaConfig, w: GptWeights): void {
  for (const [name, shape] of llamaParamShapes(c)) {
    const p = w.get(name);
    if (!p) throw new UsageError(`weights: missing parameter ${name}`);
    if (p.shape.join('x') !== shape.join('x'))
      throw new UsageError(`weights: ${name} has shape ${p.shape.join('x')}, expected ${shape.join('x')}`);
  }
}

/** Parameters, tied embeddings counted once (they are one tensor). */
export function llamaParamCount(c: LlamaConfig): number {
  return llamaParamShapes(c).reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
}
