/**
 * The differentiable tfjs forward of a LLaMA-family model (src/lm/llama.ts), for training LoRA
 * adapters on weights read from the model's ONNX initializers. Same math as llama-writer.ts:
 * positions cumsum(mask) − 1 (what LmSession feeds as position_ids; pads get garbage that no
 * real position reads), key j visible to query i iff j ≤ i and mask[j] = 1, RMSNorm,
 * rotate-half rotary embeddings, grouped-query attention (query heads reshaped to
 * [B·H_kv, rep·S, Dh], as the writer does, so K/V are never copied), SwiGLU MLP, tied or
 * untied head. Frozen weights are plain tensors: only LoRA factors receive gradients.
 */
import { tf } from '../core/backend.js';
import { type LlamaConfig, type LlamaModule, llamaModuleName } from '../lm/llama.js';
import type { GptWeights } from '../lm/gpt.js';
import type { LoraParams, RefInput, TfParams } from './reference.js';
import { addT, matMul2, matMulW, scaleT } from './tfops.js';
import { type TokenLayout, paddedLayout, readRows } from './token-layout.js';

type T2 = tf.Tensor2D;

/** R [Dh,Dh] with x·R = rotate_half(x) = [−x2, x1]. */
function rotateHalfMatrix(Dh: number): T2 {
  const half = Dh / 2;
  const r = new Float32Array(Dh * Dh);
  for (let j = 0; j < half; j++) {
    r[(j + half) * Dh + j] = -1; // out[j] = −x[j+half]
    r[j * Dh + j + half] = 1; // out[j+half] = x[j]
  }
  return tf.tensor2d(r, [Dh, Dh]);
}

/**
 * RMSNorm x·rsqrt(mean(x²)+eps)·g over the last axis of x [N,d], with a hand-written gradient:
 * the gain's gradient as a ones-row matMul, not tfjs's broadcast-mul gradient (an axis-0
 * reduction, slow on wasm: docs/design.md §3).
 */
const rmsNorm = tf.customGrad(((x: T2, g: tf.Tensor1D, eps: tf.Scalar, save: tf.GradSaveFunc) => {
  const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps));
  const xh = tf.mul(x, r) as T2;
  save([xh, r, g]);
  return {
    value: tf.mul(xh, g),
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xs, rs, gs] = saved as [T2, T2, tf.Tensor1D];
      const d = dy.shape[1];
      const dg = tf.reshape(tf.matMul(tf.ones([1, dy.shape[0]]) as T2, tf.mul(dy, xs) as T2), [d]);
      const dxh = tf.mul(dy, gs);
      const dx = tf.mul(rs, tf.sub(dxh, tf.mul(xs, tf.mean(tf.mul(dxh, xs), 1, true))));
      return [dx, dg, tf.zerosLike(eps)];
    },
  };
}) as any) as (x: T2, g: tf.Tensor1D, eps: tf.Scalar) => T2;

/** Frozen tensors by HF name; a tied head gets "lm_head.weight" = embed_tokensᵀ. */
export function toLlamaTfParams(c: LlamaConfig, w: GptWeights): TfParams {
  const out: TfParams = new Map();
  for (const [name, p] of w) out.set(name, tf.tensor(p.data, p.shape));
  if (c.tieWordEmbeddings) out.set('lm_head.weight', tf.transpose(out.get('model.embed_tokens.weight')!));
  return out;
}

/** logits [B·S, V] and final hidden states [B·S, d] (call inside tf.tidy / a gradient closure). */
/**
 * `handGrads` (pre-training, llama-train.ts): RMSNorm with the hand-written gradient and rotary
 * as x·R, the wasm-fast forms of the same math (gradients agree to float rounding). Off by
 * default so that the LoRA runs keep the exact float trajectories their CI bounds were set on.
 */
export function llamaTfForward(
  c: LlamaConfig,
  p: TfParams,
  inp: RefInput,
  lora?: LoraParams,
  o: { handGrads?: boolean } = {},
): { logits: T2; hidden: T2 } {
  return llamaLayoutForward(c, p, paddedLayout(inp), lora, o);
}

/**
 * The forward over a token layout (token-layout.ts): logits and final hidden states at the
 * layout's reads ([M, V], [M, d]; every token when it has none). Frozen weights are plain
 * tensors; the linear layers take them through matMulW (no weight gradient computed).
 */
export function llamaLayoutForward(
  c: LlamaConfig,
  p: TfParams,
  layout: TokenLayout,
  lora?: LoraParams,
  o: { handGrads?: boolean } = {},
): { logits: T2; hidden: T2 } {
  const H = c.nHead,
    Hkv = c.nKvHead,
    Dh = c.headDim,
    half = Dh / 2;
  const N = layout.N;
  const P = (n: string) => {
    const t = p.get(n);
    if (!t) throw new Error(`missing tfjs parameter ${n}`);
    return t;
  };
  // rotary tables are data: computed in JS from the positions (pads get garbage no real position reads)
  const cos = new Float32Array(N * Dh);
  const sin = new Float32Array(N * Dh);
  for (let t = 0; t < N; t++) {
    const pos = layout.pos[t];
    for (let j = 0; j < half; j++) {
      const ang = pos * Math.pow(c.ropeTheta, (-2 * j) / Dh);
      cos[t * Dh + j] = cos[t * Dh + j + half] = Math.cos(ang);
      sin[t * Dh + j] = sin[t * Dh + j + half] = Math.sin(ang);
    }
  }
  const cosT = tf.tensor3d(cos, [N, 1, Dh]);
  const sinT = tf.tensor3d(sin, [N, 1, Dh]);
  const eps = tf.scalar(c.rmsEps);
  const rms = o.handGrads
    ? (x: T2, g: string) => rmsNorm(x, P(g) as tf.Tensor1D, eps)
    : (x: T2, g: string) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps))), P(g)) as T2;
  // x [N,n·Dh] → x·cos + rotate_half(x)·sin per head, rotate_half(x) = [−x2, x1]; with handGrads
  // as x·R (a fixed signed permutation: one 2-D matMul instead of slicing activations, docs/design.md §3)
  const rot = o.handGrads ? rotateHalfMatrix(Dh) : null;
  const rope = (x2d: T2, n: number): T2 => {
    const x = tf.reshape(x2d, [N, n, Dh]) as tf.Tensor3D;
    if (rot) {
      const r = tf.reshape(matMul2(tf.reshape(x, [N * n, Dh]) as T2, rot), [N, n, Dh]);
      return tf.reshape(tf.add(tf.mul(x, cosT), tf.mul(r, sinT)), [N, n * Dh]) as T2;
    }
    const [x1, x2] = tf.split(x, 2, 2);
    return tf.reshape(tf.add(tf.mul(x, cosT), tf.mul(tf.concat([tf.neg(x2), x1], 2), sinT)), [N, n * Dh]) as T2;
  };
  // x·W (+ bias) (+ scale·(x·A)·B when adapted)
  const lin = (x: T2, layer: number, m: LlamaModule): T2 => {
    const stem = llamaModuleName(layer, m).replace(/\.weight$/, '');
    let y = matMulW(x, P(`${stem}.weight`) as T2);
    if (c.attentionBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj')) y = tf.add(y, P(`${stem}.bias`)) as T2;
    const f = lora?.get(stem);
    return f ? addT(y, matMul2(scaleT(matMul2(x, f.a), f.scale), f.b)) : y;
  };
  const oneHot = tf.oneHot(tf.tensor1d(layout.ids, 'int32'), c.vocabSize).toFloat() as T2;
  // one-hot × matrix instead of gather: wasm has no gather gradient (docs/design.md §3)
  let x = matMulW(oneHot, P('model.embed_tokens.weight') as T2);
  for (let l = 0; l < c.nLayer; l++) {
    const n1 = rms(x, `model.layers.${l}.input_layernorm.weight`);
    const q = tf.mul(rope(lin(n1, l, 'q_proj'), H), 1 / Math.sqrt(Dh)) as T2;
    const k = rope(lin(n1, l, 'k_proj'), Hkv);
    const ctx = layout.attend(q, k, lin(n1, l, 'v_proj'), H, Hkv, Dh);
    x = addT(x, lin(ctx, l, 'o_proj'));
    const n2 = rms(x, `model.layers.${l}.post_attention_layernorm.weight`);
    const gate = lin(n2, l, 'gate_proj');
    const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), lin(n2, l, 'up_proj')) as T2;
    x = addT(x, lin(act, l, 'down_proj'));
  }
  const hidden = readRows(layout, rms(x, 'model.norm.weight'));
  const logits = matMulW(hidden, P('lm_head.weight') as T2);
  const f = lora?.get('lm_head');
  return { hidden, logits: f ? (tf.add(logits, matMul2(tf.mul(matMul2(hidden, f.a), f.scale) as T2, f.b)) as T2) : logits };
}
