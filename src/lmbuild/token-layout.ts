/**
 * Which tokens a tfjs transformer forward (reference.ts for GPT-2, llama-tf.ts for the LLaMA
 * family) runs and who attends to whom. Every position-wise op (embeddings, LayerNorm/RMSNorm,
 * the linear layers and their LoRA branches, the MLP) works on the N tokens as rows of one
 * [N, ·] matrix; only attention needs the layout:
 *   - paddedLayout: B rows of S tokens, left-padded (the plain batch: N = B·S);
 *   - sharedPrefixLayout: G prefixes (left-padded to Sp) and B tails (right-padded to Ss),
 *     tail b continuing prefix group[b]. Rows that share a prefix (the 16 rows X Z of a
 *     training batch share the question X) run it once: N = G·Sp + B·Ss instead of
 *     B·(Sp + Ss). A tail token attends to its prefix's keys (selected per tail by a 0/1
 *     matMul, so gradients from every tail flow back into the one prefix) and causally to the
 *     tail's own keys. Same math as the padded rows X Z: masked keys weigh exp(−1e9) = 0.
 * `reads` (optional) are the token indices whose logits the caller wants, in order: the
 * forward selects their final hidden states before the output layer (a [M, V] product
 * instead of [N, V]).
 */
import { tf } from '../core/backend.js';
import { concat2T, matMulC, reshapeT } from './tfops.js';

type T2 = tf.Tensor2D;

export interface TokenLayout {
  /** tokens in the forward */
  N: number;
  /** token ids [N] (pads hold the pad id) */
  ids: Int32Array;
  /** cumsum(mask) − 1 per token, counted along its row (a tail continues its prefix); pads before a row's first token get −1 */
  pos: Int32Array;
  /** token indices to read logits at (null: every token, [N, V]) */
  reads: Int32Array | null;
  /**
   * softmax(q·kᵀ + bias)·v per head (call inside the tape): q [N, H·Dh] already scaled,
   * k, v [N, Hkv·Dh] (query head h uses kv head ⌊h / (H/Hkv)⌋) → context [N, H·Dh].
   */
  attend(q: T2, k: T2, v: T2, H: number, Hkv: number, Dh: number): T2;
}

/** The additive bias: query i of a row sees key j iff j ≤ i and mask[j] = 1. */
function causalBias(B: number, S: number, mask: ArrayLike<number>): Float32Array {
  const bias = new Float32Array(B * S * S);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++) for (let j = 0; j < S; j++) bias[(b * S + s) * S + j] = j <= s && mask[b * S + j] ? 0 : -1e9;
  return bias;
}

/** Rows of S tokens [R·S, n·Dh] → key heads [R·n, Dh, S]. */
const keyHeads = (k: T2, R: number, S: number, n: number, Dh: number) =>
  reshapeT<tf.Rank.R3>(tf.transpose(reshapeT(k, [R, S, n, Dh]), [0, 2, 3, 1]), [R * n, Dh, S]);
/** Rows of S tokens [R·S, n·Dh] → heads [R, n, S, Dh]. */
const heads4 = (t: T2, R: number, S: number, n: number, Dh: number) =>
  tf.transpose(reshapeT(t, [R, S, n, Dh]), [0, 2, 1, 3]) as tf.Tensor4D;

/**
 * softmax(qg·kh + bias)·vh as one taped op, qg [G, rep·Sq, Dh], kh [G, Dh, Sk], vh [G, Sk, Dh]
 * (G = R·Hkv): the gradient by hand with the formulas of bmm (tfops) and of tfjs's softmax
 * gradient, dS = dP⊙P − Σ(dP⊙P)·P, so the numbers are the same; taped op by op the reshapes,
 * the bias add and the softmax would each copy their inputs for the backward.
 */
function attnCore(
  qg: tf.Tensor3D,
  kh: tf.Tensor3D,
  vh: tf.Tensor3D,
  bias: tf.Tensor4D,
  shape4: [number, number, number, number],
): tf.Tensor3D {
  return tf.customGrad(((qi: tf.Tensor3D, ki: tf.Tensor3D, vi: tf.Tensor3D, save: tf.GradSaveFunc) => {
    const scores = tf.add(tf.reshape(tf.matMul(qi, ki), shape4), bias);
    const probs = tf.reshape(tf.softmax(scores), [qi.shape[0], qi.shape[1], ki.shape[2]]) as tf.Tensor3D;
    save([qi, ki, vi, probs]);
    return {
      value: tf.matMul(probs, vi),
      gradFunc: (dy: tf.Tensor3D, saved: tf.Tensor[]) => {
        const [qs, ks, vs, ps] = saved as tf.Tensor3D[];
        const dp = tf.matMul(dy, tf.transpose(vs, [0, 2, 1]));
        const dv = tf.matMul(tf.transpose(ps, [0, 2, 1]), dy);
        const dyTimesY = tf.mul(dp, ps);
        const ds = tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [2], true), ps)) as tf.Tensor3D;
        return [tf.matMul(ds, tf.transpose(ks, [0, 2, 1])), tf.matMul(tf.transpose(qs, [0, 2, 1]), ds), dv];
      },
    };
  }) as any)(qg, kh, vh) as tf.Tensor3D;
}

/**
 * Attention of R rows of Sq queries over Sk keys: q [R·Sq, H·Dh]; kh [R·Hkv, Dh, Sk];
 * vh [R·Hkv, Sk, Dh]; bias [R, 1, Sq, Sk]. Query heads are grouped [R·Hkv, rep·Sq, Dh]
 * (head h = kv·rep + r) so K/V are never copied per query head.
 */
function attendRows(
  q: T2,
  kh: tf.Tensor3D,
  vh: tf.Tensor3D,
  bias: tf.Tensor4D,
  R: number,
  Sq: number,
  Sk: number,
  H: number,
  Hkv: number,
  Dh: number,
): T2 {
  const rep = H / Hkv;
  const qg = reshapeT<tf.Rank.R3>(heads4(q, R, Sq, H, Dh), [R * Hkv, rep * Sq, Dh]);
  const ctx = attnCore(qg, kh, vh, bias, [R, H, Sq, Sk]);
  return reshapeT<tf.Rank.R2>(tf.transpose(reshapeT(ctx, [R, H, Sq, Dh]), [0, 2, 1, 3]), [R * Sq, H * Dh]);
}

/** B left-padded rows of S tokens (mask omitted = all ones). */
export function paddedLayout(inp: { batch: number; seqLen: number; ids: ArrayLike<number>; mask?: ArrayLike<number> }): TokenLayout {
  const { batch: B, seqLen: S } = inp;
  const N = B * S;
  const mask = inp.mask ?? new Uint8Array(N).fill(1);
  const pos = new Int32Array(N);
  for (let b = 0; b < B; b++) {
    let cum = 0;
    for (let s = 0; s < S; s++) pos[b * S + s] = (cum += mask[b * S + s] ? 1 : 0) - 1;
  }
  const bias = causalBias(B, S, mask);
  return {
    N,
    ids: Int32Array.from(inp.ids),
    pos,
    reads: null,
    attend: (q, k, v, H, Hkv, Dh) =>
      attendRows(
        q,
        keyHeads(k, B, S, Hkv, Dh),
        reshapeT<tf.Rank.R3>(heads4(v, B, S, Hkv, Dh), [B * Hkv, S, Dh]),
        tf.tensor4d(bias, [B, 1, S, S]),
        B,
        S,
        S,
        H,
        Hkv,
        Dh,
      ),
  };
}

export interface SharedPrefixInput {
  /** the distinct prefixes (each non-empty) */
  prefixes: number[][];
  /** the rows: prefix index and the tokens after it (may be empty) */
  tails: { group: number; tokens: number[] }[];
  /** reads as (row, length): the logits after the row's first `len` tokens (prefix + tail), 1 ≤ len ≤ |prefix| + |tail| */
  reads: { row: number; len: number }[];
  padId: number;
}

/** Prefixes left-padded to Sp (token g·Sp + s), then tails right-padded to Ss (token G·Sp + b·Ss + s). */
export function sharedPrefixLayout(inp: SharedPrefixInput): TokenLayout {
  const G = inp.prefixes.length,
    B = inp.tails.length;
  if (G === 0 || inp.prefixes.some((p) => p.length === 0)) throw new Error('sharedPrefixLayout: every prefix needs a token');
  const Sp = Math.max(...inp.prefixes.map((p) => p.length));
  const Ss = Math.max(1, ...inp.tails.map((t) => t.tokens.length));
  const Np = G * Sp,
    Ns = B * Ss,
    N = Np + Ns,
    Sk = Sp + Ss;
  const ids = new Int32Array(N).fill(inp.padId);
  const pos = new Int32Array(N).fill(-1);
  const pmask = new Uint8Array(Np);
  inp.prefixes.forEach((p, g) => {
    const pad = Sp - p.length;
    p.forEach((t, i) => {
      ids[g * Sp + pad + i] = t;
      pmask[g * Sp + pad + i] = 1;
      pos[g * Sp + pad + i] = i;
    });
  });
  // tail query s of row b sees prefix key j iff the prefix has a token there, tail key j iff j ≤ s and j is a token
  const tbias = new Float32Array(B * Ss * Sk);
  const sel = new Float32Array(B * G);
  inp.tails.forEach(({ group: g, tokens }, b) => {
    const L = inp.prefixes[g].length;
    sel[b * G + g] = 1;
    for (let s = 0; s < Ss; s++) {
      const i = Np + b * Ss + s;
      if (s < tokens.length) ids[i] = tokens[s];
      pos[i] = L + Math.min(s, tokens.length - 1); // pads repeat the last position (never read)
      for (let j = 0; j < Sp; j++) tbias[(b * Ss + s) * Sk + j] = pmask[g * Sp + j] ? 0 : -1e9;
      for (let j = 0; j < Ss; j++) tbias[(b * Ss + s) * Sk + Sp + j] = j <= s && j < tokens.length ? 0 : -1e9;
    }
  });
  const reads = Int32Array.from(inp.reads, ({ row, len }) => {
    const { group: g, tokens } = inp.tails[row];
    const L = inp.prefixes[g].length;
    if (len < 1 || len > L + tokens.length) throw new Error(`sharedPrefixLayout: read length ${len} outside 1..${L + tokens.length}`);
    return len <= L ? g * Sp + Sp - L + len - 1 : Np + row * Ss + len - L - 1;
  });
  const pbias = causalBias(G, Sp, pmask);
  return {
    N,
    ids,
    pos,
    reads,
    attend(q, k, v, H, Hkv, Dh) {
      const [qp, qs] = tf.split(q, [Np, Ns], 0) as T2[];
      const [kp, ks] = tf.split(k, [Np, Ns], 0) as T2[];
      const [vp, vs] = tf.split(v, [Np, Ns], 0) as T2[];
      const kpH = heads4(kp, G, Sp, Hkv, Dh);
      const vpH = heads4(vp, G, Sp, Hkv, Dh);
      const ctxP = attendRows(
        qp,
        reshapeT<tf.Rank.R3>(tf.transpose(kpH, [0, 1, 3, 2]), [G * Hkv, Dh, Sp]),
        reshapeT<tf.Rank.R3>(vpH, [G * Hkv, Sp, Dh]),
        tf.tensor4d(pbias, [G, 1, Sp, Sp]),
        G,
        Sp,
        Sp,
        H,
        Hkv,
        Dh,
      );
      // each tail's copy of its prefix's keys/values: a 0/1 [B, G] matMul (differentiable; wasm has no gather gradient)
      const selT = tf.tensor2d(sel, [B, G]);
      const perTail = (t: tf.Tensor4D) =>
        reshapeT<tf.Rank.R4>(matMulC(selT, reshapeT<tf.Rank.R2>(t, [G, Hkv * Sp * Dh])), [B, Hkv, Sp, Dh]);
      const kAll = concat2T(perTail(kpH), heads4(ks, B, Ss, Hkv, Dh), 2);
      const vAll = concat2T(perTail(vpH), heads4(vs, B, Ss, Hkv, Dh), 2);
      const ctxS = attendRows(
        qs,
        reshapeT<tf.Rank.R3>(tf.transpose(kAll, [0, 1, 3, 2]), [B * Hkv, Dh, Sk]),
        reshapeT<tf.Rank.R3>(vAll, [B * Hkv, Sk, Dh]),
        tf.tensor4d(tbias, [B, 1, Ss, Sk]),
        B,
        Ss,
        Sk,
        H,
        Hkv,
        Dh,
      );
      return concat2T(ctxP, ctxS, 0);
    },
  };
}

/** The final hidden states at the layout's reads ([M, d]; all N rows when reads is null). */
export function readRows(layout: TokenLayout, hidden: T2): T2 {
  if (!layout.reads) return hidden;
  const M = layout.reads.length;
  const sel = new Float32Array(M * layout.N);
  layout.reads.forEach((t, i) => (sel[i * layout.N + t] = 1));
  return matMulC(tf.tensor2d(sel, [M, layout.N]), hidden);
}
