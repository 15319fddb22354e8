/**
 * Which linear layers of a model family LoRA can adapt, by their Hugging Face module names,
 * and the concrete modules (layer, shapes, PEFT path) of a given model. One table serves the
 * tfjs forward (lmbuild/reference.ts), the ONNX low-rank branches (lora-graph.ts), export and
 * PEFT key names, so they cannot disagree about what "c_proj" means.
 *
 * GPT-2 (the family flowtune writes, src/lm/gpt.ts): weights are Conv1D-style [in, out], used
 * as x·W. PEFT matches target names as suffixes, so `c_proj` adapts both attn.c_proj and
 * mlp.c_proj, and PEFT's default target for gpt2 is `c_attn`. `lm_head` (the output layer,
 * x·W [d, V] after the final LayerNorm) can be adapted too: without it the logits are
 * ln_f(x)·W, bounded by the LayerNorm, and a policy cannot reach very small probabilities.
 *
 * LLaMA / Qwen2 (src/lm/llama.ts): nn.Linear modules q/k/v/o_proj (self_attn) and
 * gate/up/down_proj (mlp), stored here as [in, out] like the GPT (the writer transposes HF's
 * [out, in]); PEFT's default targets for llama and qwen2 are q_proj and v_proj.
 */
import { UsageError } from '../core/errors.js';
import type { ModelFacts } from './folder.js';
import { LLAMA_ATTENTION_MODULES, LLAMA_MLP_MODULES, llamaConfigFromHf, llamaModuleName, llamaModuleShape } from './llama.js';

export interface LoraModule {
  /** flowtune / ONNX initializer stem, e.g. "h.0.attn.c_attn" (weight "h.0.attn.c_attn.weight") */
  name: string;
  /** Hugging Face module name the user targets, e.g. "c_attn" */
  target: string;
  layer: number;
  inDim: number;
  outDim: number;
  /** module path inside the HF model (PEFT keys: base_model.model.<peftPath>.lora_A.weight) */
  peftPath: string;
}

export interface LoraFamily {
  family: string;
  targets: string[];
  defaultTargets: string[];
  /** PEFT's fan_in_fan_out: true for GPT-2's Conv1D (weights stored [in, out]) */
  fanInFanOut: boolean;
}

const GPT2: LoraFamily = {
  family: 'gpt2',
  targets: ['c_attn', 'c_proj', 'c_fc', 'lm_head'],
  defaultTargets: ['c_attn'],
  fanInFanOut: true,
};
const LLAMA_TARGETS = [...LLAMA_ATTENTION_MODULES, ...LLAMA_MLP_MODULES];
const LLAMA: LoraFamily = {
  family: 'llama',
  targets: [...LLAMA_TARGETS, 'lm_head'],
  defaultTargets: ['q_proj', 'v_proj'],
  fanInFanOut: false,
};
const QWEN2: LoraFamily = { ...LLAMA, family: 'qwen2' };

export function loraFamily(facts: Pick<ModelFacts, 'modelType'>): LoraFamily {
  if (facts.modelType === 'gpt2') return GPT2;
  if (facts.modelType === 'llama') return LLAMA;
  if (facts.modelType === 'qwen2') return QWEN2;
  throw new UsageError(
    `adapter.kind lora supports model_type gpt2, llama and qwen2 (this model is ${facts.modelType}); use adapter.kind head`,
  );
}

/** What loraModules needs of a model: GPT-2 dims, or config.json (raw) for the LLaMA family's shapes. */
export type LoraFacts = Pick<ModelFacts, 'modelType' | 'nLayer' | 'nEmbd'> & { vocabSize?: number; raw?: Record<string, unknown> };

/**
 * The adapted modules of a model, checked: unknown targets and ranks outside 1..min(in, out)
 * are UsageErrors naming the valid values.
 */
export function loraModules(facts: LoraFacts, targets: string[] | null, rank: number): LoraModule[] {
  const fam = loraFamily(facts);
  const want = targets ?? fam.defaultTargets;
  if (want.length === 0) throw new UsageError(`adapter.targets is empty; valid names for ${fam.family}: ${fam.targets.join(', ')}`);
  for (const t of want)
    if (!fam.targets.includes(t))
      throw new UsageError(`adapter.targets: unknown module "${t}" for ${fam.family}; valid names: ${fam.targets.join(', ')}`);
  const out: LoraModule[] = [];
  if (fam === GPT2) {
    const d = facts.nEmbd;
    const shapes: [string, string, number, number][] = [
      ['attn.c_attn', 'c_attn', d, 3 * d],
      ['attn.c_proj', 'c_proj', d, d],
      ['mlp.c_fc', 'c_fc', d, 4 * d],
      ['mlp.c_proj', 'c_proj', 4 * d, d],
    ];
    for (let i = 0; i < facts.nLayer; i++)
      for (const [path, target, inDim, outDim] of shapes)
        if (want.includes(target))
          out.push({ name: `h.${i}.${path}`, target, layer: i, inDim, outDim, peftPath: `transformer.h.${i}.${path}` });
    if (want.includes('lm_head')) {
      // the output layer (an nn.Linear in HF, tied to wte there; flowtune's ONNX holds it as its own initializer)
      if (!facts.vocabSize) throw new Error('loraModules: lm_head needs vocabSize');
      out.push({ name: 'lm_head', target: 'lm_head', layer: facts.nLayer, inDim: d, outDim: facts.vocabSize, peftPath: 'lm_head' });
    }
  } else {
    if (!facts.raw) throw new Error('loraModules: LLaMA-family shapes need the model config (facts.raw)');
    const c = llamaConfigFromHf(facts.raw);
    for (let i = 0; i < c.nLayer; i++)
      for (const target of LLAMA_TARGETS)
        if (want.includes(target)) {
          // flowtune's ONNX initializer and HF's module path are the same name: model.layers.i.self_attn.q_proj
          const name = llamaModuleName(i, target).replace(/\.weight$/, '');
          const [inDim, outDim] = llamaModuleShape(c, target);
          out.push({ name, target, layer: i, inDim, outDim, peftPath: name });
        }
    if (want.includes('lm_head')) {
      // a tied head is Transpose(embed_tokens) in the graph, no MatMul of its own to branch
      if (c.tieWordEmbeddings)
        throw new UsageError('adapter.targets: lm_head is tied to embed_tokens in this model (tie_word_embeddings); drop lm_head');
      out.push({ name: 'lm_head', target: 'lm_head', layer: c.nLayer, inDim: c.nEmbd, outDim: c.vocabSize, peftPath: 'lm_head' });
    }
  }
  if (!Number.isInteger(rank) || rank <= 0) throw new UsageError(`adapter.rank must be a positive integer, got ${rank}`);
  const limit = Math.min(...out.map((m) => Math.min(m.inDim, m.outDim)));
  if (rank > limit) throw new UsageError(`adapter.rank ${rank} exceeds the smallest adapted layer dimension (${limit}); use 1..${limit}`);
  return out;
}

/** Graph input names of a module's low-rank factors (lora-graph.ts). */
export const loraInputNames = (m: LoraModule) => ({ a: `lora.${m.name}.A`, b: `lora.${m.name}.B` });
