/**
 * flowtune's own autoregressive sampler over an LmSession: batched, left-padded prompts, KV
 * cache (one new token per row per step, so cost grows linearly with length), temperature,
 * optional top-k / top-p (off by default), min/max new tokens, stop on EOS, an optional
 * allowed-token set, and an optional policy hook that replaces the base logits (the
 * LoRA-style head of head.ts plugs in here). It returns what token-level GFlowNet training
 * (docs/design.md §2 (LM)) needs from a rollout: tokens, per-step log-probabilities under the
 * distribution actually sampled from, and the final hidden state of every visited state.
 */
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { logSoftmaxAt } from '../core/math.js';
import { type Packed, packLeft } from './batch.js';
import type { KvCache, LmSession } from './session.js';

/** Given the states of this step, return the logits to sample from ([B×V], may be the input). */
export type PolicyHook = (step: {
  step: number;
  /** rows still generating (others are ignored) */
  active: Uint8Array;
  /** [B×d] final hidden state of each row's current state */
  hidden: Float32Array;
  /** [B×V] base LM logits at that state */
  logits: Float32Array;
}) => Float32Array;

export interface SampleOptions {
  maxNewTokens: number;
  minNewTokens?: number;
  /** 1 by default; 0 = greedy (argmax; ties → lowest id). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Stop token (default: the model's eos_token_id). */
  eosTokenId?: number;
  /** Extra tokens that end a row (kept in the output; `stopped` = 2). Used e.g. to hand "=" to a calculator. */
  stopTokenIds?: ArrayLike<number>;
  /**
   * Ends a row (kept in the output; `stopped` = 2) when it returns true for the row's
   * generated tokens so far — e.g. a tool that waits for text ending in "=" (text-stop.ts).
   */
  stopWhen?: (row: number, generated: Int32Array) => boolean;
  /** Only these token ids (plus EOS) may be sampled. */
  allowedTokens?: ArrayLike<number>;
  /** At step maxNewTokens−1 only EOS is allowed, so every row ends with EOS (a terminated trajectory). */
  forceEosAtMax?: boolean;
  rng?: Rng;
  policy?: PolicyHook;
  /** Keep [B×T×d] hidden states (default true). */
  keepHidden?: boolean;
  /** Keep [B×T×V] base logits (default false; large for big vocabularies). */
  keepLogits?: boolean;
  /** Run one more forward so `cache` also holds the last sampled token (default false). */
  keepCache?: boolean;
}

export interface SampleResult {
  batch: number;
  /** steps taken (the longest row) */
  steps: number;
  /** [B×steps] sampled ids; EOS-filled after a row stops */
  tokens: Int32Array;
  /** generated tokens per row, EOS included when emitted */
  lengths: Int32Array;
  /** 1 when the row ended with EOS, 2 with one of stopTokenIds, 0 when it ran out of steps */
  stopped: Uint8Array;
  /**
   * [B×steps] log-prob of each sampled token under the sampling distribution (policy logits,
   * masks, temperature; for greedy the untempered masked distribution); 0 after the stop
   */
  logProbs: Float32Array;
  /** [B×steps×d] hidden state of the state each token was sampled from */
  hidden: Float32Array | null;
  /** [B×steps×V] base logits at those states */
  baseLogits: Float32Array | null;
  hiddenSize: number;
  vocabSize: number;
  /** The KV cache after the last forward; with keepCache it covers prompt + all sampled tokens. */
  cache: KvCache;
  /** [B×cache.length] attention mask matching `cache` */
  cacheMask: Uint8Array;
  prompt: Packed;
}

const ONE = BigInt(1);
const ZERO = BigInt(0);

export async function sample(session: LmSession, prompts: ArrayLike<number>[], o: SampleOptions): Promise<SampleResult> {
  const B = prompts.length;
  const V = session.vocabSize;
  const d = session.hiddenSize;
  const eos = o.eosTokenId ?? session.facts.eosTokenId;
  const temp = o.temperature ?? 1;
  const maxNew = o.maxNewTokens;
  if (B === 0) throw new UsageError('sample: no prompts');
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new UsageError(`maxNewTokens must be a positive integer, got ${maxNew}`);
  if (!(temp >= 0)) throw new UsageError(`temperature must be ≥ 0, got ${temp}`);
  if (prompts.some((p) => p.length === 0)) throw new UsageError('sample: empty prompt (give at least one token, e.g. BOS)');
  const packed = packLeft(prompts, session.facts.padTokenId);
  if (packed.len + maxNew > session.facts.nCtx)
    throw new UsageError(`prompt (${packed.len} tokens) + ${maxNew} new tokens exceed the context of ${session.facts.nCtx}`);
  if ((o.keepHidden ?? true) && !session.hasHidden) throw new UsageError('this model exposes no hidden states');
  const rng = o.rng ?? new Rng(0);
  let allowed: Uint8Array | null = null;
  if (o.allowedTokens) {
    allowed = new Uint8Array(V);
    for (let i = 0; i < o.allowedTokens.length; i++) allowed[o.allowedTokens[i]] = 1;
    allowed[eos] = 1;
  }

  const extraStop = o.stopTokenIds ? new Set(Array.from(o.stopTokenIds)) : null;
  const tokens = new Int32Array(B * maxNew).fill(eos);
  const logProbs = new Float32Array(B * maxNew);
  const hiddenAll = (o.keepHidden ?? true) ? new Float32Array(B * maxNew * d) : null;
  const logitsAll = o.keepLogits ? new Float32Array(B * maxNew * V) : null;
  const lengths = new Int32Array(B);
  const stopped = new Uint8Array(B);
  const active = new Uint8Array(B).fill(1);

  let out = await session.forward({ batch: B, inputIds: packed.ids, attentionMask: packed.mask });
  let allIds: Int32Array = packed.ids;
  let mask: Uint8Array = packed.mask;
  let maskBig = BigInt64Array.from(packed.mask, (m) => (m ? ONE : ZERO));
  let T = packed.len;
  let lastPos = packed.len - 1;
  let seqLen = packed.len;
  const stepLogits = new Float32Array(B * V);
  const stepHidden = new Float32Array(B * d);
  const probs = new Float64Array(V);
  let steps = 0;
  for (let t = 0; t < maxNew; t++) {
    for (let b = 0; b < B; b++) {
      stepLogits.set(out.logits.subarray((b * seqLen + lastPos) * V, (b * seqLen + lastPos + 1) * V), b * V);
      if (out.hidden) stepHidden.set(out.hidden.subarray((b * seqLen + lastPos) * d, (b * seqLen + lastPos + 1) * d), b * d);
    }
    if (hiddenAll) for (let b = 0; b < B; b++) hiddenAll.set(stepHidden.subarray(b * d, (b + 1) * d), (b * maxNew + t) * d);
    if (logitsAll) for (let b = 0; b < B; b++) logitsAll.set(stepLogits.subarray(b * V, (b + 1) * V), (b * maxNew + t) * V);
    const logits = o.policy ? o.policy({ step: t, active, hidden: stepHidden, logits: stepLogits }) : stepLogits;
    const next = new Int32Array(B).fill(eos);
    const wasActive = Uint8Array.from(active);
    for (let b = 0; b < B; b++) {
      if (!active[b]) continue;
      const onlyEos = o.forceEosAtMax && t === maxNew - 1;
      const noEos = t < (o.minNewTokens ?? 0);
      // Allowed set for this row and step, then the (tempered) log-softmax over it.
      let m = -Infinity;
      for (let v = 0; v < V; v++) {
        const ok = onlyEos ? v === eos : (!allowed || allowed[v]) && !(noEos && v === eos);
        probs[v] = ok ? logits[b * V + v] : -Infinity;
        if (probs[v] > m) m = probs[v];
      }
      if (m === -Infinity) throw new UsageError('sample: no token is allowed at this step (check allowedTokens / minNewTokens)');
      let choice: number;
      let lp: number;
      if (temp === 0) {
        choice = 0;
        for (let v = 1; v < V; v++) if (probs[v] > probs[choice]) choice = v;
        lp = logSoftmaxAt(probs, 0, V, choice); // masked tokens are −∞ and add exp(−∞) = 0
      } else if (o.topK || o.topP) {
        for (let v = 0; v < V; v++) probs[v] = (probs[v] - m) / temp;
        applyTopKTopP(probs, o.topK, o.topP);
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(probs[v]);
        const logS = Math.log(s);
        for (let v = 0; v < V; v++) probs[v] = Math.exp(probs[v] - logS);
        choice = rng.categorical(probs);
        lp = Math.log(probs[choice]);
      } else {
        // one exp per token: unnormalized weights, the normalizer only enters log p of the choice
        let s = 0;
        const inv = 1 / temp;
        for (let v = 0; v < V; v++) {
          const w = probs[v] === -Infinity ? 0 : Math.exp((probs[v] - m) * inv);
          probs[v] = w;
          s += w;
        }
        choice = rng.categorical(probs);
        lp = Math.log(probs[choice] / s);
      }
      next[b] = choice;
      tokens[b * maxNew + t] = choice;
      logProbs[b * maxNew + t] = lp;
      lengths[b] = t + 1;
      if (choice === eos) {
        active[b] = 0;
        stopped[b] = 1;
      } else if (extraStop?.has(choice) || (o.stopWhen && o.stopWhen(b, tokens.subarray(b * maxNew, b * maxNew + t + 1)))) {
        active[b] = 0;
        stopped[b] = 2;
      }
    }
    steps = t + 1;
    // Feed the new tokens to advance the cache; rows that had already stopped feed a masked-out EOS.
    const last = !active.some((a) => a === 1) || t === maxNew - 1;
    if (last && !o.keepCache) break;
    // Grow the mask by one column (row copies are memcpy; ORT gets the BigInt64 copy as is).
    const newMask = new Uint8Array(B * (T + 1));
    const newBig = new BigInt64Array(B * (T + 1));
    for (let b = 0; b < B; b++) {
      newMask.set(mask.subarray(b * T, (b + 1) * T), b * (T + 1));
      newMask[b * (T + 1) + T] = wasActive[b];
      newBig.set(maskBig.subarray(b * T, (b + 1) * T), b * (T + 1));
      newBig[b * (T + 1) + T] = wasActive[b] ? ONE : ZERO;
    }
    mask = newMask;
    maskBig = newBig;
    T += 1;
    if (session.hasKvCache) {
      out = await session.forward({ batch: B, inputIds: next, attentionMask: maskBig, past: out.present });
      seqLen = 1;
      lastPos = 0;
    } else {
      // An export without KV-cache I/O: recompute the whole sequence (quadratic, but correct).
      const grown = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        grown.set(allIds.subarray(b * (T - 1), (b + 1) * (T - 1)), b * T);
        grown[b * T + T - 1] = next[b];
      }
      allIds = grown;
      out = await session.forward({ batch: B, inputIds: allIds, attentionMask: mask });
      seqLen = T;
      lastPos = T - 1;
    }
    if (last) break;
  }
  const trim = <A extends Float32Array | Int32Array>(a: A | null, width: number): A | null => {
    if (!a || steps === maxNew) return a;
    const r = new (a.constructor as any)(B * steps * width) as A;
    for (let b = 0; b < B; b++) r.set(a.subarray(b * maxNew * width, (b * maxNew + steps) * width), b * steps * width);
    return r;
  };
  return {
    batch: B,
    steps,
    tokens: trim(tokens, 1)!,
    lengths,
    stopped,
    logProbs: trim(logProbs, 1)!,
    hidden: trim(hiddenAll, d),
    baseLogits: trim(logitsAll, V),
    hiddenSize: d,
    vocabSize: V,
    cache: out.present,
    cacheMask: mask,
    prompt: packed,
  };
}

/** Sets entries outside the top-k / nucleus to −∞ (in place, on tempered log-weights). */
function applyTopKTopP(lw: Float64Array, topK?: number, topP?: number): void {
  const V = lw.length;
  if (topK && topK > 0 && topK < V) {
    const sorted = Float64Array.from(lw).sort().reverse();
    const kth = sorted[topK - 1];
    for (let v = 0; v < V; v++) if (lw[v] < kth) lw[v] = -Infinity;
  }
  if (topP && topP < 1) {
    const idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => lw[b] - lw[a]);
    let s = 0;
    for (const i of idx) s += Math.exp(lw[i]);
    let c = 0;
    let cut = false;
    for (const i of idx) {
      if (cut) lw[i] = -Infinity;
      else {
        c += Math.exp(lw[i]) / s;
        if (c >= topP) cut = true;
      }
    }
  }
}

/** Token ids of each row up to (not including) EOS. */
export function sequences(r: SampleResult, eos: number): number[][] {
  const out: number[][] = [];
  for (let b = 0; b < r.batch; b++) {
    const row: number[] = [];
    for (let t = 0; t < r.lengths[b]; t++) {
      const id = r.tokens[b * r.steps + t];
      if (id === eos && r.stopped[b] === 1 && t === r.lengths[b] - 1) break;
      row.push(id);
    }
    out.push(row);
  }
  return out;
}
