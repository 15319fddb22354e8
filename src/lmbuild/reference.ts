/**
 * The tfjs forward of a GPT (gpt.ts): the reference the ONNX export is checked against, and
 * the model the tiny-LM builder trains. Same math as onnx-writer.ts: positions from
 * cumsum(mask) − 1, key j visible to query i iff j ≤ i and mask[j] = 1, sigmoid GELU.
 * Attention Q/K/V use three d×d matrices here (slicing one [N,3d] product copies the whole
 * tensor out of the wasm heap, docs/design.md §3); the writer's c_attn is their concatenation.
 */
import { tf } from '../core/backend.js';
import type { GptConfig, GptWeights } from '../lm/gpt.js';
import { addT, gelu, layerNormW, linearW, matMul2, matMulW, scaleT } from './tfops.js';
import { type TokenLayout, paddedLayout, readRows } from './token-layout.js';

/** tfjs parameters by name; c_attn is split into q/k/v pieces. */
export type TfParams = Map<string, tf.Tensor>;

export function toTfParams(c: GptConfig, w: GptWeights, variables = false): TfParams {
  const out: TfParams = new Map();
  const d = c.nEmbd;
  const mk = (name: string, data: Float32Array, shape: number[]) =>
    out.set(name, variables ? tf.variable(tf.tensor(data, shape), true, name) : tf.tensor(data, shape));
  for (const [name, p] of w) {
    if (name.endsWith('attn.c_attn.weight')) {
      const base = name.replace('c_attn.weight', '');
      for (let j = 0; j < 3; j++) {
        const part = new Float32Array(d * d);
        for (let r = 0; r < d; r++) part.set(p.data.subarray(r * 3 * d + j * d, r * 3 * d + (j + 1) * d), r * d);
        mk(`${base}${'qkv'[j]}.weight`, part, [d, d]);
      }
    } else if (name.endsWith('attn.c_attn.bias')) {
      const base = name.replace('c_attn.bias', '');
      for (let j = 0; j < 3; j++) mk(`${base}${'qkv'[j]}.bias`, p.data.slice(j * d, (j + 1) * d), [d]);
    } else mk(name, p.data, p.shape);
  }
  return out;
}

/**
 * Frozen tensors by name with c_attn kept whole (the LoRA forward): on activations of a few
 * hundred rows one [N, 3d] product and one split cost fewer tfjs ops than three products.
 */
export function fusedAttnParams(w: GptWeights): TfParams {
  const out: TfParams = new Map();
  for (const [name, p] of w) out.set(name, tf.tensor(p.data, p.shape));
  return out;
}

/** Back to GptWeights (concatenates q/k/v into c_attn). */
export function fromTfParams(c: GptConfig, params: TfParams): GptWeights {
  const w: GptWeights = new Map();
  const d = c.nEmbd;
  const data = (n: string) => params.get(n)!.dataSync() as Float32Array;
  for (const [name, t] of params) {
    const m = /^(.*attn\.)([qkv])\.(weight|bias)$/.exec(name);
    if (!m) {
      w.set(name, { shape: [...t.shape], data: Float32Array.from(data(name)) });
      continue;
    }
    if (m[2] !== 'q') continue;
    if (m[3] === 'weight') {
      const cat = new Float32Array(d * 3 * d);
      ['q', 'k', 'v'].forEach((k, j) => {
        const part = data(`${m[1]}${k}.weight`);
        for (let r = 0; r < d; r++) cat.set(part.subarray(r * d, (r + 1) * d), r * 3 * d + j * d);
      });
      w.set(`${m[1]}c_attn.weight`, { shape: [d, 3 * d], data: cat });
    } else {
      const cat = new Float32Array(3 * d);
      ['q', 'k', 'v'].forEach((k, j) => cat.set(data(`${m[1]}${k}.bias`), j * d));
      w.set(`${m[1]}c_attn.bias`, { shape: [3 * d], data: cat });
    }
  }
  return w;
}

export interface RefInput {
  batch: number;
  seqLen: number;
  /** [B×S] */
  ids: ArrayLike<number>;
  /** [B×S]; omitted = all ones (no padding: positions 0..S−1, plain causal mask). */
  mask?: ArrayLike<number>;
}

/**
 * LoRA factors by module stem ("h.0.attn.c_attn", src/lm/lora-spec.ts): the module's output
 * gains scale·(x·A)·B, A [in, r], B [r, out]. For c_attn the rank-r product x·A is shared and
 * B's column blocks give the q/k/v deltas (slicing the small B, never the [N, 3d] output).
 */
export type LoraParams = Map<string, { a: tf.Tensor2D; b: tf.Tensor2D; scale: number }>;

/** Full forward: logits [B·S, V] and final hidden states [B·S, d] (call inside tf.tidy). */
export function referenceForward(
  c: GptConfig,
  p: TfParams,
  inp: RefInput,
  lora?: LoraParams,
): { logits: tf.Tensor2D; hidden: tf.Tensor2D } {
  return gptForward(c, p, paddedLayout(inp), lora);
}

/**
 * The forward over a token layout (token-layout.ts): logits and final hidden states at the
 * layout's reads ([M, V], [M, d]; every token when it has none). Weights that are plain
 * tensors get no gradient (tfops matMulW / linearW / layerNormW); trainable variables do.
 */
export function gptForward(
  c: GptConfig,
  p: TfParams,
  layout: TokenLayout,
  lora?: LoraParams,
): { logits: tf.Tensor2D; hidden: tf.Tensor2D } {
  const d = c.nEmbd;
  const H = c.nHead;
  const Dh = d / H;
  const P = (n: string) => {
    const t = p.get(n);
    if (!t) throw new Error(`missing tfjs parameter ${n}`);
    return t;
  };
  // GPT-2 positions: pads before a row's first token take position 0
  const pos = layout.pos.map((q) => Math.max(q, 0));
  const oneHot = (idx: Int32Array, depth: number) => tf.oneHot(tf.tensor1d(idx, 'int32'), depth).toFloat() as tf.Tensor2D;
  // One-hot × matrix instead of gather: wasm has no gather gradient (docs/design.md §3).
  let x = tf.add(
    matMulW(oneHot(layout.ids, c.vocabSize), P('wte') as tf.Tensor2D),
    matMulW(oneHot(pos, c.nCtx), P('wpe') as tf.Tensor2D),
  ) as tf.Tensor2D;
  const shared = new Map<string, tf.Tensor2D>();
  // x·W + b (+ scale·(x·A)·B[:, cols] when the module is adapted)
  const adapted = (module: string, xin: tf.Tensor2D, y: tf.Tensor2D, cols?: [number, number]): tf.Tensor2D => {
    const f = lora?.get(module);
    if (!f) return y;
    let u = shared.get(module);
    if (!u) shared.set(module, (u = scaleT(matMul2(xin, f.a), f.scale)));
    const b = cols ? (tf.slice(f.b, [0, cols[0]], [-1, cols[1]]) as tf.Tensor2D) : f.b;
    return addT(y, matMul2(u, b));
  };
  const ln = (t: tf.Tensor2D, n: string) => layerNormW(t, P(n + '.weight') as tf.Tensor1D, P(n + '.bias') as tf.Tensor1D, c.lnEps);
  for (let i = 0; i < c.nLayer; i++) {
    const pre = `h.${i}.`;
    const h1 = ln(x, pre + 'ln_1');
    const lin = (n: string, inp2: tf.Tensor2D) => linearW(inp2, P(pre + n + '.weight') as tf.Tensor2D, P(pre + n + '.bias') as tf.Tensor1D);
    let ctx: tf.Tensor2D;
    if (p.has(pre + 'attn.c_attn.weight')) {
      // fused c_attn (frozen weights, fusedAttnParams): one [N, 3d] product and one LoRA branch, split once
      const [q, k, v] = tf.split(adapted(pre + 'attn.c_attn', h1, lin('attn.c_attn', h1)), 3, 1) as tf.Tensor2D[];
      ctx = layout.attend(scaleT(q, 1 / Math.sqrt(Dh)), k, v, H, H, Dh);
    } else {
      const qkv = (j: number, n: string) => adapted(pre + 'attn.c_attn', h1, lin(n, h1), [j * d, d]);
      const q = scaleT(qkv(0, 'attn.q'), 1 / Math.sqrt(Dh));
      ctx = layout.attend(q, qkv(1, 'attn.k'), qkv(2, 'attn.v'), H, H, Dh);
    }
    x = addT(x, adapted(pre + 'attn.c_proj', ctx, lin('attn.c_proj', ctx)));
    const h2 = ln(x, pre + 'ln_2');
    const fc = gelu(adapted(pre + 'mlp.c_fc', h2, lin('mlp.c_fc', h2))) as tf.Tensor2D;
    x = addT(x, adapted(pre + 'mlp.c_proj', fc, lin('mlp.c_proj', fc)));
  }
  const hidden = readRows(layout, ln(x, 'ln_f'));
  return { hidden, logits: adapted('lm_head', hidden, matMulW(hidden, P('lm_head.weight') as tf.Tensor2D)) };
}
