/**
 * PPO baseline (Schulman et al. 2017, as used for LM fine-tuning in RLHF): the RL baseline of
 * Hu et al. (ICLR 2024), on the same head, optimizer, schedule and sample budget as the
 * GFlowNet runs. One training step samples one batch of B rationales (the same number of
 * trajectories as one step of every other method) and then makes `epochs` passes of
 * `minibatches` optimizer updates over it with the clipped surrogate
 *
 *   L(θ) = −(1/B_mb) Σ_b Σ_t min(ρ_bt A_b, clip(ρ_bt, 1 − ε, 1 + ε) A_b),
 *   ρ_bt = π_θ(a_t | s_t) / π_old(a_t | s_t)        (π_old: the policy that sampled the batch)
 *
 * Reward and KL penalty: r_b = log R(Z_b), the task's log-reward exactly as the GFlowNet runs
 * see it (reward.prior, likelihoodWeight, temperature schedule: docs/design.md eq. (LM)), and
 * the KL to the frozen base LM π_0 (the head starts at B = 0, i.e. at π_0) as a loss term,
 *   + β (1/B_mb) Σ_b Σ_t KL(π_θ(· | s_t) ‖ π_0(· | s_t)),
 * exact over the allowed actions at every visited state. PPO therefore maximizes
 *   E_{Z~π}[log R(Z)] − β KL(π ‖ π_0)   (the sequence KL is the expected sum of per-state KLs),
 * whose maximizer is π* ∝ π_0 · R^{1/β}: a sharpened reward, not R itself (the GFlowNet
 * target); for β → 0 a point mass on argmax R. Why the KL as a loss and not in the reward
 * (RLHF's r − β log(π/π_0)): a sampled KL in the reward only acts through differences between
 * the rationales of a batch, so once the policy has collapsed onto one Z per question every
 * rationale of a group gets the same penalty and the pull back to π_0 vanishes (measured on the
 * enumerable task of test/ppo.test.ts: β = 20 left KL(π ‖ π_0) at 0.93 nats for one seed of two);
 * the per-state KL keeps its gradient at any policy (the GRPO choice).
 *
 * Baseline: the group mean (GRPO / RLOO style). Each batch holds B / G questions with G
 * rationales each, and A_b = r_b − mean of r over the G rationales of the same X. Why not a
 * value network: the reward arrives only at the end of Z, a critic on the frozen hidden states
 * would be a second model with its own learning rate, warm-up and bias; the group mean is an
 * unbiased per-question baseline that costs nothing but grouping the batch, and with one
 * group and ratio 1 the gradient is exactly REINFORCE-with-baseline's (test/ppo.test.ts).
 */
import { tf } from '../core/backend.js';
import { UsageError } from '../core/errors.js';
import { DivergedError, type StepMetrics } from '../finetune/trainer.js';
import type { FineTuneSetup } from '../finetune/setup.js';
import type { ScoredRow } from '../finetune/score.js';
import { disposeNodes, nodeLogPolicy, pick, stackNodes, type NodeTensors } from '../finetune/nodes.js';
import type { PolicyAdapter } from '../finetune/adapter.js';

export interface PpoOptions {
  /** ε of the clipped ratio */
  clip: number;
  /** passes over each sampled batch */
  epochs: number;
  /** optimizer updates per pass (the batch's groups are shuffled into this many minibatches) */
  minibatches: number;
  /** rationales per question (the group of the baseline); must divide train.batchSize */
  groupSize: number;
  /** β of the KL penalty to the base LM */
  klCoef: number;
}

export const PPO_DEFAULTS: PpoOptions = { clip: 0.2, epochs: 4, minibatches: 2, groupSize: 4, klCoef: 0.05 };

export interface PpoStepMetrics extends StepMetrics {
  /** mean over the batch of log π_old(Z) − log π_0(Z) (a one-sample estimate of KL(π ‖ π_0); logged, not in the reward) */
  klBase: number;
  /** fraction of (token, update) pairs whose ratio was clipped */
  clipFraction: number;
  /** optimizer updates made (minibatches whose advantages were all zero are skipped) */
  updates: number;
}

/** A_b = r_b − mean of r over b's group (rows [g·G, (g+1)·G) share one X). */
export function groupAdvantages(reward: readonly number[], groupSize: number): number[] {
  if (reward.length % groupSize !== 0) throw new Error(`batch of ${reward.length} is not a whole number of groups of ${groupSize}`);
  const out = new Array<number>(reward.length);
  for (let g = 0; g < reward.length; g += groupSize) {
    let m = 0;
    for (let i = g; i < g + groupSize; i++) m += reward[i];
    m /= groupSize;
    for (let i = g; i < g + groupSize; i++) out[i] = reward[i] - m;
  }
  return out;
}

/**
 * The clipped surrogate loss over token nodes: −(1/rows) Σ_nodes min(ρ A, clip(ρ) A) with
 * ρ = exp(logpNew − logpOld); A is the advantage of the node's sequence.
 */
export function clippedSurrogate(logpNew: tf.Tensor1D, logpOld: tf.Tensor1D, adv: tf.Tensor1D, clip: number, rows: number): tf.Scalar {
  return tf.tidy(() => {
    const ratio = tf.exp(tf.sub(logpNew, logpOld));
    const unclipped = tf.mul(ratio, adv);
    const clipped = tf.mul(tf.clipByValue(ratio, 1 - clip, 1 + clip), adv);
    return tf.neg(tf.div(tf.sum(tf.minimum(unclipped, clipped)), rows)) as tf.Scalar;
  });
}

/** Sum of per-node values over each row's nodes. */
export function perRowSums(values: ArrayLike<number>, nodes: NodeTensors): number[] {
  return nodes.rows.map((r, b) => {
    let s = 0;
    for (let i = 0; i < r.nodes.length; i++) s += values[nodes.first[b] + i];
    return s;
  });
}

/** log π_θ(a_t | s_t) of the chosen action at every node (head), and under the base LM (no head). */
export function nodeLogProbs(head: PolicyAdapter, nodes: NodeTensors): { policy: Float32Array; base: Float32Array } {
  const policy = tf.tidy(() => pick(nodeLogPolicy(head, nodes), nodes.chosen).dataSync() as Float32Array);
  const base = tf.tidy(
    () => pick(tf.logSoftmax(tf.add(nodes.base, nodes.negMask)) as tf.Tensor2D, nodes.chosen).dataSync() as Float32Array,
  );
  return { policy, base };
}

/** Per-node copy of per-row values. */
export function spreadRows(values: readonly number[], nodes: NodeTensors): Float32Array {
  const out = new Float32Array(nodes.N);
  nodes.rows.forEach((r, b) => out.fill(values[b], nodes.first[b], nodes.first[b] + r.nodes.length));
  return out;
}

/** Loss value, gradients and clipped-node count of one PPO update on a stack of rows. */
/**
 * β (1/rows) Σ_nodes KL(π_θ(· | s) ‖ π_0(· | s)) over the allowed actions (masked entries have
 * probability 0 under both and contribute 0).
 */
export function klToBase(logp: tf.Tensor2D, nodes: NodeTensors, klCoef: number): tf.Scalar {
  const lp0 = tf.logSoftmax(tf.add(nodes.base, nodes.negMask));
  return tf.mul(tf.sum(tf.mul(tf.exp(logp), tf.sub(logp, lp0))), klCoef / nodes.rows.length) as tf.Scalar;
}

export function ppoGrads(
  head: PolicyAdapter,
  nodes: NodeTensors,
  logpOld: Float32Array,
  adv: Float32Array,
  clip: number,
  vars: tf.Variable[],
  klCoef = 0,
): { loss: number; grads: Map<tf.Variable, tf.Tensor>; clipped: number } {
  const old = tf.tensor1d(logpOld),
    a = tf.tensor1d(adv);
  let clipped = 0;
  try {
    const { value, grads } = tf.variableGrads(() => {
      const logp = nodeLogPolicy(head, nodes);
      const lp = pick(logp, nodes.chosen);
      const ratio = tf.exp(tf.sub(lp, old)).dataSync();
      for (let i = 0; i < ratio.length; i++) if ((ratio[i] > 1 + clip && adv[i] > 0) || (ratio[i] < 1 - clip && adv[i] < 0)) clipped++;
      const surrogate = clippedSurrogate(lp, old, a, clip, nodes.rows.length);
      return klCoef > 0 ? (tf.add(surrogate, klToBase(logp, nodes, klCoef)) as tf.Scalar) : surrogate;
    }, vars);
    const loss = value.dataSync()[0];
    value.dispose();
    return { loss, grads: new Map(vars.map((v) => [v, grads[v.name]])), clipped };
  } finally {
    tf.dispose([old, a]);
  }
}

export class PpoBaseline {
  readonly o: PpoOptions;

  constructor(
    readonly trainer: FineTuneSetup,
    o: Partial<PpoOptions> = {},
  ) {
    this.o = { ...PPO_DEFAULTS, ...o };
    const B = trainer.cfg.train.batchSize;
    if (B % this.o.groupSize !== 0) throw new UsageError(`ppo.groupSize ${this.o.groupSize} must divide train.batchSize ${B}`);
    if (this.o.minibatches > B / this.o.groupSize)
      throw new UsageError(
        `ppo.minibatches ${this.o.minibatches} exceeds the ${B / this.o.groupSize} groups of a batch (train.batchSize / ppo.groupSize)`,
      );
  }

  async trainStep(): Promise<PpoStepMetrics> {
    const t0 = performance.now();
    const t = this.trainer,
      cfg = t.cfg,
      B = cfg.train.batchSize,
      G = this.o.groupSize;
    const exs = Array.from({ length: B / G }, () => t.examples[t.rng.int(t.examples.length)]).flatMap(
      (e) => new Array(G).fill(e) as (typeof e)[],
    );
    const rows = await t.sampleOnPolicy(exs);
    // π_old and π_0 at every node, once, before any update
    const all = stackNodes(rows, t.session.hiddenSize, t.session.vocabSize, t.constraints.stopId);
    let lp: { policy: Float32Array; base: Float32Array };
    try {
      lp = nodeLogProbs(t.adapter, all);
    } finally {
      disposeNodes(all);
    }
    const seqOld = perRowSums(lp.policy, all),
      seqBase = perRowSums(lp.base, all);
    const klBase = seqOld.map((v, b) => v - seqBase[b]);
    const adv = groupAdvantages(
      rows.map((r) => r.logR),
      G,
    );
    const nodeOld = rows.map((r, b) => lp.policy.subarray(all.first[b], all.first[b] + r.nodes.length));

    const vars = t.adapter.policyVariables();
    const scale = t.lrScale();
    let lossSum = 0,
      updates = 0,
      clipped = 0,
      counted = 0,
      gradNorm = 0;
    for (let e = 0; e < this.o.epochs; e++) {
      // minibatches of whole groups: the advantages of a group sum to zero, so the tokens its
      // rationales share (a common prefix) get no net push within one update
      const groups = permutation(B / G, t.rng);
      for (let m = 0; m < this.o.minibatches; m++) {
        const idx = groups.filter((_, i) => i % this.o.minibatches === m).flatMap((g) => Array.from({ length: G }, (_, k) => g * G + k));
        // every rationale of these groups got the same reward (a saturated model samples one Z):
        // no signal, and an Adam step on a zero gradient would still move the head by its momentum
        if (idx.every((i) => adv[i] === 0) && this.o.klCoef === 0) continue;
        const mb: ScoredRow[] = idx.map((i) => rows[i]);
        const nodes = stackNodes(mb, t.session.hiddenSize, t.session.vocabSize, t.constraints.stopId);
        try {
          const old = new Float32Array(nodes.N);
          idx.forEach((i, k) => old.set(nodeOld[i], nodes.first[k]));
          const r = ppoGrads(
            t.adapter,
            nodes,
            old,
            spreadRows(
              idx.map((i) => adv[i]),
              nodes,
            ),
            this.o.clip,
            vars,
            this.o.klCoef,
          );
          if (Number.isFinite(r.loss)) gradNorm = t.optim.step(r.grads, scale, cfg.optim.clip);
          tf.dispose([...r.grads.values()]);
          if (!Number.isFinite(r.loss) || !Number.isFinite(gradNorm))
            throw new DivergedError(`PPO diverged at step ${t.step + 1} (loss ${r.loss}, gradient norm ${gradNorm})`);
          lossSum += r.loss;
          updates++;
          clipped += r.clipped;
          counted += nodes.N;
        } finally {
          disposeNodes(nodes);
        }
      }
    }
    return {
      ...t.finishStep('PPO', updates ? lossSum / updates : 0, gradNorm, rows, t0),
      klBase: klBase.reduce((s, v) => s + v, 0) / B,
      clipFraction: counted ? clipped / counted : 0,
      updates,
    };
  }
}

/** A seeded random permutation of 0..n−1 (Fisher–Yates). */
function permutation(n: number, rng: { int(n: number): number }): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
