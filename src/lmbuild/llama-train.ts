/**
 * The LLaMA-family model (src/lm/llama.ts: RMSNorm, rotary, grouped-query attention, SwiGLU,
 * untied head) as something train-tiny.ts's loop pre-trains: tf.Variables initialized from the
 * seed and llamaTfForward (llama-tf.ts), the same math llama-writer.ts exports.
 */
import { tf } from '../core/backend.js';
import type { GptWeights } from '../lm/gpt.js';
import { type LlamaConfig, initLlamaWeights, validateLlamaConfig } from '../lm/llama.js';
import type { TfParams } from './reference.js';
import { llamaTfForward } from './llama-tf.js';
import type { TrainableLm } from './train-tiny.js';

/** Init: N(0, std) matrices, norm gains 1 (initLlamaWeights jitters them for tests; training starts plain). */
export function llamaTrainable(c: LlamaConfig, seed: number, std = 0.02): TrainableLm {
  validateLlamaConfig(c);
  const w = initLlamaWeights(c, seed, std);
  const params: TfParams = new Map();
  for (const [name, p] of w) {
    if (name.endsWith('norm.weight')) p.data.fill(1);
    params.set(name, tf.variable(tf.tensor(p.data, p.shape), true, name));
  }
  return {
    vocabSize: c.vocabSize,
    nCtx: c.nCtx,
    eosTokenId: c.eosTokenId,
    params,
    logits: (p, b) => llamaTfForward(c, p, { batch: b.batch, seqLen: b.seqLen, ids: b.ids }, undefined, { handGrads: true }).logits,
    weights: (p) => {
      const out: GptWeights = new Map();
      for (const [name, t] of p) out.set(name, { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) });
      return out;
    },
  };
}
