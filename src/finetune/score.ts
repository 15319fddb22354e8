import type { LmSession } from '../lm/session.js';
import { packLeft } from '../lm/batch.js';
import { logSoftmaxAt, maskedLogSumExp } from '../core/math.js';
import { prefixRewards } from '../lm/scorer.js';
import { UsageError } from '../core/errors.js';
import { actionMask, decisionPrefixes, type ZConstraints, type ZSample } from './rollout.js';

export interface RewardSpec {
  prior: 'lm' | 'allowed';
  likelihoodWeight: number;
  temperature: number; // T_R at this step
}

/** Everything the objectives need about one (X, Z, Y), from one teacher-forced forward. */
export interface ScoredRow {
  nodes: number[]; // decision prefix lengths j_0 < … < j_{n−1} = |Z|
  /** the row's X and Z token ids (adapters inside the network recompute their logits from them) */
  tokens: { x: number[]; z: number[] };
  actions: number[]; // per node: the token chosen, or EOS (stop) at the last node
  hidden: Float32Array; // [n × d] final hidden state at each node
  /**
   * [n × V] the base LM's log-probabilities renormalized over the allowed actions of each
   * state (stop included): the policy softmax is unchanged, and soft Q-learning starts from
   * Q = log π̃, the base policy restricted to the allowed actions, whose soft values are O(1)
   * instead of the arbitrary per-state offsets of raw logits
   */
  baseLogits: Float32Array;
  /**
   * [n] the masked log-sum-exp subtracted from the raw logits at each node (baseLogits = raw −
   * baseLogNorm): an adapter inside the network (LoRA) produces raw logits, and soft
   * Q-learning subtracts this to start from the same Q = log π̃ as the head
   */
  baseLogNorm: Float32Array;
  mask: Uint8Array; // [n × V] allowed actions
  logR: number; // log R(Z), eq. (LM)
  /** log R(z_1..j ⊤) at each node (modified SubTB); only with prefix = true */
  prefixLogR: Float64Array | null;
  /**
   * [n] log R split over the trajectory's edges (sums to logR): the edge leaving node k earns
   * the prior of the tokens it writes (its action and any tool tokens after it; the first edge
   * also tool tokens before the first node), the exit edge also the stop term and the
   * likelihood; all divided by T_R. On a tree this is the same trajectory reward, so it changes
   * no soft-optimal policy (soft Q: dqn.priorPerToken).
   */
  edgeLogR: Float64Array;
  logPrior: number; // log prior(Z) (untempered)
  logLik: number; // log p_LM(Y | X Z)
}

/**
 * Scores a batch against the frozen LM: one forward of X Z Y gives the hidden states and
 * base logits at every decision state (the head's inputs), log prior(Z) and
 * log p_LM(Y | X Z); with `prefix`, the prefix rewards log p_LM(Y | X z_1..j) come from the
 * shared-KV-cache scorer. log R = (log prior + w · log p(Y | …)) / T_R, eq. (LM).
 */
export async function scoreRows(
  session: LmSession,
  xs: number[][],
  zs: ZSample[],
  ys: number[][],
  c: ZConstraints,
  reward: RewardSpec,
  opts: { prefix: boolean; chunk?: number },
): Promise<ScoredRow[]> {
  const V = session.vocabSize,
    d = session.hiddenSize,
    eos = c.stopId;
  const out: ScoredRow[] = [];
  // per row: log prior(z_1..j) and the stop term at j, for the prefix rewards below
  const priors: Float64Array[] = [];
  const stops: Float64Array[] = [];
  const chunk = opts.chunk ?? 64;
  for (let c0 = 0; c0 < xs.length; c0 += chunk) {
    const rows = xs.slice(c0, c0 + chunk).map((x, i) => [...x, ...zs[c0 + i].tokens, ...ys[c0 + i]]);
    const packed = packLeft(rows, session.facts.padTokenId);
    const L = packed.len;
    if (L > session.facts.nCtx) throw new UsageError(`X Z Y of ${L} tokens exceed the model's context window of ${session.facts.nCtx}`);
    const f = await session.forward({ batch: rows.length, inputIds: packed.ids, attentionMask: packed.mask });
    if (!f.hidden) throw new Error('the model exposes no hidden states');
    rows.forEach((_, i) => {
      const b = c0 + i;
      const z = zs[b];
      const m = z.tokens.length;
      const p0 = packed.pad[i] + xs[b].length - 1; // position of the last token of X
      const nodes = decisionPrefixes(z);
      const n = nodes.length;
      const hidden = new Float32Array(n * d);
      const baseLogits = new Float32Array(n * V);
      const baseLogNorm = new Float32Array(n);
      const mask = new Uint8Array(n * V);
      const actions: number[] = [];
      nodes.forEach((j, k) => {
        const pos = i * L + p0 + j;
        hidden.set(f.hidden!.subarray(pos * d, pos * d + d), k * d);
        actionMask(c, V, j, mask, k * V);
        const lse = maskedLogSumExp(f.logits, pos * V, V, mask, k * V);
        for (let v = 0; v < V; v++) baseLogits[k * V + v] = f.logits[pos * V + v] - lse;
        baseLogNorm[k] = lse;
        actions.push(j < m ? z.tokens[j] : eos);
      });
      // prior over Z, token by token (tool tokens included: they are part of the text)
      const priorPrefix = new Float64Array(m + 1);
      const stopTerm = new Float64Array(m + 1);
      const tmpMask = new Uint8Array(V);
      for (let j = 0; j <= m; j++) {
        const off = (i * L + p0 + j) * V;
        if (reward.prior === 'allowed') {
          actionMask({ ...c, minLength: 0, maxLength: Infinity }, V, j, tmpMask);
          const lse = maskedLogSumExp(f.logits, off, V, tmpMask);
          stopTerm[j] = f.logits[off + eos] - lse;
          if (j < m) priorPrefix[j + 1] = priorPrefix[j] + f.logits[off + z.tokens[j]] - lse;
        } else if (j < m) priorPrefix[j + 1] = priorPrefix[j] + logSoftmaxAt(f.logits, off, V, z.tokens[j]);
      }
      let logLik = 0;
      for (let t = 0; t < ys[b].length; t++) logLik += logSoftmaxAt(f.logits, (i * L + p0 + m + t) * V, V, ys[b][t]);
      const logPrior = priorPrefix[m] + stopTerm[m];
      const T = reward.temperature,
        w = reward.likelihoodWeight;
      // edge k writes tokens nodes[k]..nodes[k+1]−1 (the first edge also any tool tokens before its node)
      const edgeLogR = Float64Array.from(nodes, (j, k) => {
        const from = k === 0 ? 0 : j,
          to = k < n - 1 ? nodes[k + 1] : m;
        return (priorPrefix[to] - priorPrefix[from] + (k === n - 1 ? stopTerm[m] + w * logLik : 0)) / T;
      });
      out.push({
        nodes,
        tokens: { x: xs[c0 + i], z: z.tokens },
        actions,
        hidden,
        baseLogits,
        baseLogNorm,
        mask,
        logR: (logPrior + w * logLik) / T,
        prefixLogR: null,
        edgeLogR,
        logPrior,
        logLik,
      });
      priors.push(priorPrefix);
      stops.push(stopTerm);
    });
  }
  if (opts.prefix) {
    const pr = await prefixRewards(
      session,
      xs,
      zs.map((z) => z.tokens),
      ys,
    );
    out.forEach((row, b) => {
      row.prefixLogR = Float64Array.from(
        row.nodes,
        (j) => (priors[b][j] + stops[b][j] + reward.likelihoodWeight * pr.rewards[b][j]) / reward.temperature,
      );
    });
  }
  return out;
}
