/**
 * Which tokens a tfjs transformer forward (reference.ts for GPT-2, llama-tf.ts for the LLaMA
 * family) runs and who attends to whom. Every position-wise op (embeddings, LayerNorm/RMSNorm,
 * the linear layers and their LoRA branches, the MLP) works on the N tokens as rows of one
 * [N, ·] matrix; only attention needs the layout:
 *   - paddedLayout: B rows of S tokens, left-padded (the plain batch: N = B·S);
 *   - sharedPrefixLayout: rows that share a prefix (the 16 rows X Z of a training batch share
 *     the question X) packed into one sequence per prefix: X once, then each row's tail Z
 *     back to back, a tail seeing X and its own earlier tokens only (an attention mask, and
 *     positions that continue X). N = Σ|X_g| + Σ|Z_b| up to the left padding of the groups,
 *     instead of B·max|X Z|; gradients from every tail flow into the one X. Same math as the
 *     padded rows X Z: masked keys weigh exp(−1e9) = 0.
 * `reads` (optional) are the token indices whose logits the caller wants, in order: the
 * forward selects their final hidden states before the output layer (a [M, V] product
 * instead of [N, V]).
 */
import { tf } from '../core/backend.js';
import { matMulC, reshapeT } from './tfops.js';

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

/** R rows of S tokens with an attention bias [R, 1, S, S] (the causal mask or a packed one). */
function rowsLayout(R: number, S: number, ids: Int32Array, pos: Int32Array, bias: Float32Array, reads: Int32Array | null): TokenLayout {
  return {
    N: R * S,
    ids,
    pos,
    reads,
    attend: (q, k, v, H, Hkv, Dh) =>
      attendRows(
        q,
        keyHeads(k, R, S, Hkv, Dh),
        reshapeT<tf.Rank.R3>(heads4(v, R, S, Hkv, Dh), [R * Hkv, S, Dh]),
        tf.tensor4d(bias, [R, 1, S, S]),
        R,
        S,
        S,
        H,
        Hkv,
        Dh,
      ),
  };
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
  return rowsLayout(B, S, Int32Array.from(inp.ids), pos, causalBias(B, S, mask), null);
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

/**
 * One row per prefix g: its tokens, then the tails of its rows in row order; rows left-padded
 * to the longest. Segment of a token: 0 pad, 1 prefix, 2 + b tail of row b.
 */
export function sharedPrefixLayout(inp: SharedPrefixInput): TokenLayout {
  const G = inp.prefixes.length;
  if (G === 0 || inp.prefixes.some((p) => p.length === 0)) throw new Error('sharedPrefixLayout: every prefix needs a token');
  const lens = inp.prefixes.map((p) => p.length);
  const offset = new Array<number>(inp.tails.length); // tail b's first token, counted from its prefix's start
  inp.tails.forEach(({ group: g, tokens }, b) => {
    offset[b] = lens[g];
    lens[g] += tokens.length;
  });
  const S = Math.max(...lens);
  const N = G * S;
  const ids = new Int32Array(N).fill(inp.padId);
  const pos = new Int32Array(N).fill(-1);
  const seg = new Int32Array(N);
  const start = lens.map((n, g) => g * S + S - n); // index of row g's first token
  inp.prefixes.forEach((p, g) =>
    p.forEach((t, i) => {
      ids[start[g] + i] = t;
      pos[start[g] + i] = i;
      seg[start[g] + i] = 1;
    }),
  );
  inp.tails.forEach(({ group: g, tokens }, b) =>
    tokens.forEach((t, s) => {
      const i = start[g] + offset[b] + s;
      ids[i] = t;
      pos[i] = inp.prefixes[g].length + s;
      seg[i] = 2 + b;
    }),
  );
  // query i sees key j ≤ i of its prefix or of its own tail
  const bias = new Float32Array(G * S * S).fill(-1e9);
  for (let g = 0; g < G; g++)
    for (let i = 0; i < S; i++) {
      const si = seg[g * S + i];
      if (si === 0) continue;
      for (let j = 0; j <= i; j++) {
        const sj = seg[g * S + j];
        if (sj === 1 || sj === si) bias[(g * S + i) * S + j] = 0;
      }
    }
  const reads = Int32Array.from(inp.reads, ({ row, len }) => {
    const { group: g, tokens } = inp.tails[row];
    const L = inp.prefixes[g].length;
    if (len < 1 || len > L + tokens.length) throw new Error(`sharedPrefixLayout: read length ${len} outside 1..${L + tokens.length}`);
    return len <= L ? start[g] + len - 1 : start[g] + offset[row] + len - L - 1;
  });
  return rowsLayout(G, S, ids, pos, bias, reads);
}

/** The final hidden states at the layout's reads ([M, d]; all N rows when reads is null). */
export function readRows(layout: TokenLayout, hidden: T2): T2 {
  if (!layout.reads) return hidden;
  const M = layout.reads.length;
  const sel = new Float32Array(M * layout.N);
  layout.reads.forEach((t, i) => (sel[i * layout.N + t] = 1));
  return matMulC(tf.tensor2d(sel, [M, layout.N]), hidden);
}
