/**
 * Scoring under the frozen LM:
 *  - scoreBatch: log p_LM(Y | C) for a batch of (context, continuation) pairs, one forward.
 *  - prefixRewards: log p_LM(Y | X z_1..t) for every t = 0..|Z| (docs/design.md §2 (LM), §4 prefix
 *    rewards), against one shared KV cache of X Z. The trick: the continuation for prefix t
 *    attends to the cache of the whole X Z with z_{t+1..} masked out. Positions are
 *    cumsum(mask) − 1, so masked tokens shift nothing, and causal attention means the cached
 *    keys of X z_1..t are exactly what a forward of X z_1..t alone computes. The first Y
 *    token is predicted from the X Z forward's own logits at z_t. Cost: one forward of X Z
 *    plus one (|Y|−1)-token forward per prefix, instead of a full forward per prefix.
 *    (For R(z_1..t ⊤) put the stop/separator tokens at the start of Y.)
 */
import { UsageError } from '../core/errors.js';
import { packLeft } from './batch.js';
import { logSoftmaxAt } from '../core/math.js';
import type { LmSession } from './session.js';

/** log p(continuation | context) per row, and per-token terms. */
export async function scoreBatch(
  s: LmSession,
  contexts: ArrayLike<number>[],
  continuations: ArrayLike<number>[],
): Promise<{ total: Float64Array; perToken: Float64Array[] }> {
  const B = contexts.length;
  if (continuations.length !== B) throw new Error('scoreBatch: contexts and continuations differ in number');
  if (contexts.some((c) => c.length === 0)) throw new UsageError('scoreBatch: empty context (give at least one token, e.g. BOS)');
  const rows = contexts.map((c, i) => [...Array.from(c), ...Array.from(continuations[i])]);
  const p = packLeft(rows, s.facts.padTokenId);
  const out = await s.forward({ batch: B, inputIds: p.ids, attentionMask: p.mask });
  const V = s.vocabSize;
  const total = new Float64Array(B);
  const perToken: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const y = continuations[b];
    const terms = new Float64Array(y.length);
    const start = p.len - y.length; // index of y_1 in the packed row
    for (let j = 0; j < y.length; j++) {
      terms[j] = logSoftmaxAt(out.logits, (b * p.len + start + j - 1) * V, V, y[j]);
      total[b] += terms[j];
    }
    perToken.push(terms);
  }
  return { total, perToken };
}

export interface PrefixRewards {
  /** rewards[b][t] = log p(Y_b | X_b z_1..t), t = 0..|Z_b| */
  rewards: Float64Array[];
  /** zLogProbs[b][t] = log p_LM(z_{t+1} | X_b z_1..t) (the base model's prior over Z) */
  zLogProbs: Float64Array[];
}

export interface PrefixOptions {
  /** Rows per continuation forward (memory bound: rows × layers × 2 × H × len × Dh floats). */
  chunk?: number;
}

export async function prefixRewards(
  s: LmSession,
  x: ArrayLike<number>[],
  z: ArrayLike<number>[],
  y: ArrayLike<number>[],
  o: PrefixOptions = {},
): Promise<PrefixRewards> {
  const B = x.length;
  if (z.length !== B || y.length !== B) throw new Error('prefixRewards: x, z, y differ in number');
  if (x.some((r) => r.length === 0)) throw new UsageError('prefixRewards: empty X (give at least one token, e.g. BOS)');
  if (y.some((r) => r.length === 0)) throw new UsageError('prefixRewards: empty Y');
  if (!s.hasKvCache) return { rewards: await naivePrefixRewards(s, x, z, y), zLogProbs: await priorTerms(s, x, z) };
  const V = s.vocabSize;
  const xz = x.map((xi, b) => [...Array.from(xi), ...Array.from(z[b])]);
  const p = packLeft(xz, s.facts.padTokenId);
  const L = p.len;
  const maxY = Math.max(...y.map((r) => r.length));
  if (L + maxY > s.facts.nCtx) throw new UsageError(`X Z Y of ${L + maxY} tokens exceed the context of ${s.facts.nCtx}`);
  const base = await s.forward({ batch: B, inputIds: p.ids, attentionMask: p.mask });

  const rewards: Float64Array[] = [];
  const zLogProbs: Float64Array[] = [];
  const jobs: { b: number; t: number }[] = [];
  for (let b = 0; b < B; b++) {
    const nz = z[b].length;
    const r = new Float64Array(nz + 1);
    const zl = new Float64Array(nz);
    const zStart = L - nz; // packed index of z_1
    for (let t = 0; t <= nz; t++) {
      // y_1 is predicted from the last token of X z_1..t (packed index zStart + t − 1).
      r[t] = logSoftmaxAt(base.logits, (b * L + zStart + t - 1) * V, V, y[b][0]);
      if (t < nz) zl[t] = logSoftmaxAt(base.logits, (b * L + zStart + t - 1) * V, V, z[b][t]);
      if (y[b].length > 1) jobs.push({ b, t });
    }
    rewards.push(r);
    zLogProbs.push(zl);
  }
  // Each continuation row carries a copy of its cache row: bound a chunk to ~256 MB of cache.
  const bytesPerRow = 2 * s.facts.nLayer * s.facts.nKvHead * s.facts.headDim * L * 4;
  const chunk = o.chunk ?? Math.max(1, Math.min(256, Math.floor(256e6 / bytesPerRow)));
  const S = maxY - 1;
  for (let c0 = 0; c0 < jobs.length; c0 += chunk) {
    const js = jobs.slice(c0, c0 + chunk);
    const n = js.length;
    const ids = new Int32Array(n * S).fill(s.facts.padTokenId);
    const mask = new Uint8Array(n * (L + S));
    js.forEach(({ b, t }, r) => {
      const nz = z[b].length;
      for (let i = 0; i < L; i++) mask[r * (L + S) + i] = p.mask[b * L + i] && i < L - nz + t ? 1 : 0;
      for (let j = 0; j < y[b].length - 1; j++) {
        ids[r * S + j] = y[b][j];
        mask[r * (L + S) + L + j] = 1;
      }
    });
    const past = s.selectRows(
      base.present,
      js.map((j) => j.b),
    );
    const out = await s.forward({ batch: n, inputIds: ids, attentionMask: mask, past });
    js.forEach(({ b, t }, r) => {
      for (let j = 1; j < y[b].length; j++) rewards[b][t] += logSoftmaxAt(out.logits, (r * S + j - 1) * V, V, y[b][j]);
    });
  }
  return { rewards, zLogProbs };
}

/** The same quantities by one full forward per prefix (the reference the tests and bench compare against). */
export async function naivePrefixRewards(
  s: LmSession,
  x: ArrayLike<number>[],
  z: ArrayLike<number>[],
  y: ArrayLike<number>[],
): Promise<Float64Array[]> {
  const ctx: number[][] = [];
  const cont: ArrayLike<number>[] = [];
  const owner: number[] = [];
  x.forEach((xi, b) => {
    for (let t = 0; t <= z[b].length; t++) {
      ctx.push([...Array.from(xi), ...Array.from(z[b]).slice(0, t)]);
      cont.push(y[b]);
      owner.push(b);
    }
  });
  const out: Float64Array[] = z.map((zi) => new Float64Array(zi.length + 1));
  const seen = new Int32Array(x.length);
  // Separate forwards (one per prefix), as a naive implementation would run them.
  for (let i = 0; i < ctx.length; i++) {
    const { total } = await scoreBatch(s, [ctx[i]], [cont[i]]);
    out[owner[i]][seen[owner[i]]++] = total[0];
  }
  return out;
}

async function priorTerms(s: LmSession, x: ArrayLike<number>[], z: ArrayLike<number>[]): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (let b = 0; b < x.length; b++) out.push(z[b].length ? (await scoreBatch(s, [x[b]], [z[b]])).perToken[0] : new Float64Array(0));
  return out;
}

export interface StatesOf {
  /** offsets[b] = first state row of sequence b; row offsets[b] + t is state s_t = X_b z_1..t, t = 0..|Z_b| */
  offsets: Int32Array;
  /** number of state rows (Σ (|Z_b| + 1)) */
  rows: number;
  /** [rows × d] final hidden state of each state */
  hidden: Float32Array;
  /** [rows × V] base logits at each state (the next-token distribution from s_t) */
  logits: Float32Array;
}

/**
 * Hidden states and base logits of every state s_0..s_|Z| of given trajectories X Z, by one
 * left-padded forward: what the head needs to score trajectories it did not sample itself
 * (replay buffers, off-policy batches), the same quantities the sampler records on-policy.
 */
export async function statesOf(s: LmSession, x: ArrayLike<number>[], z: ArrayLike<number>[]): Promise<StatesOf> {
  if (!s.hasHidden) throw new UsageError('this model exposes no hidden states');
  if (x.some((r) => r.length === 0)) throw new UsageError('statesOf: empty X (give at least one token, e.g. BOS)');
  const B = x.length;
  const d = s.hiddenSize;
  const V = s.vocabSize;
  const p = packLeft(
    x.map((xi, b) => [...Array.from(xi), ...Array.from(z[b])]),
    s.facts.padTokenId,
  );
  const out = await s.forward({ batch: B, inputIds: p.ids, attentionMask: p.mask });
  const offsets = new Int32Array(B);
  let rows = 0;
  z.forEach((zi, b) => {
    offsets[b] = rows;
    rows += zi.length + 1;
  });
  const hidden = new Float32Array(rows * d);
  const logits = new Float32Array(rows * V);
  for (let b = 0; b < B; b++) {
    const first = p.len - z[b].length - 1; // packed index of the last X token = state s_0
    for (let t = 0; t <= z[b].length; t++) {
      const src = b * p.len + first + t;
      hidden.set(out.hidden!.subarray(src * d, (src + 1) * d), (offsets[b] + t) * d);
      logits.set(out.logits.subarray(src * V, (src + 1) * V), (offsets[b] + t) * V);
    }
  }
  return { offsets, rows, hidden, logits };
}
