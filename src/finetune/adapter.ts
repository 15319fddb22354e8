/**
 * The seam between the fine-tuning code and what is trained on top of the frozen LM. The
 * trainer, the objectives and the baselines see only this interface; the LoRA-style head of
 * head.ts is the one implementation today (`head.kind: mlp | linear`); setup.ts creates it.
 *
 * An adapter turns what the sampler and the scorer record for every state — the frozen LM's
 * final hidden state h [N×d] and base logits [N×V] — into policy logits, so an update never
 * reruns the LM (docs/design.md §4).
 */
import type { tf } from '../core/backend.js';
import type { PolicyHook } from '../lm/sampler.js';
import type { LmSession } from '../lm/session.js';
import type { ScoredRow } from './score.js';

type T2 = tf.Tensor2D;

/** The frozen model a saved adapter belongs to (checked on load). */
export interface BaseModelId {
  id: string;
  sha256: string;
}

export interface PolicyAdapter {
  /** Trainable variables of the policy logits (the optimizer's first group). */
  policyVariables(): tf.Variable[];
  /** Trainable variables of the log-flow estimator log F(s) / log Z(X) (TB trains them). */
  flowVariables(): tf.Variable[];
  /**
   * Policy logits [N,V] from stored states, differentiable in policyVariables(). `rows` are the
   * scored rows the states were stacked from (nodes.ts order): an adapter inside the network
   * (LoRA, lora-adapter.ts) recomputes its logits from their tokens.
   */
  logits(hidden: T2, baseLogits: T2, rows?: ScoredRow[]): T2;
  /** `logits` on plain arrays, outside any gradient tape (targets, values). */
  logitsSync(hidden: Float32Array, baseLogits: Float32Array, rows: number): Float32Array;
  /** log F(h) [N], differentiable in flowVariables(). */
  logFlow(hidden: T2): tf.Tensor1D;
  /** Sets log F's output bias (TB starts log Z(X) at the first batch's estimate). */
  setFlowBias(v: number): void;
  /** The policy as a sampler hook on a snapshot of the weights taken now (call again after each update). */
  policy(): PolicyHook;
  /**
   * Adapters inside the network (LoRA): their logits depend on the whole token prefix, not on
   * the frozen hidden state, so soft Q-learning stores a state as its tokens (at most
   * `prefixWidth` of them) and asks for the policy logits [n,V] after each prefix.
   */
  prefixLogits?(prefixes: number[][]): T2;
  readonly prefixWidth?: number;
  /** The session to sample from when not the frozen LM (LoRA: the graph with low-rank branches). */
  samplingSession?(): LmSession;
  /** An independent copy with the same weights (soft-Q target network). */
  clone(): PolicyAdapter;
  /** this ← (1 − τ)·this + τ·source over the policy variables (τ = 1 copies). */
  polyakFrom(source: PolicyAdapter, tau: number): void;
  /** Writes the adapter into dir. */
  save(dir: string, base: BaseModelId): void;
  /** Loads into this adapter what `save` wrote, refusing an adapter made for another base model. */
  restore(dir: string, expect: { sha256: string; vocabSize: number }): void;
  dispose(): void;
  /** dispose(), and everything else the adapter owns: its sampling session and frozen weights (LoRA). */
  release(): Promise<void>;
}

/** Sampling from softmax(logits/τ): the adapter's hook with its logits divided by τ (τ = 1: unchanged). */
export function temperedPolicy(adapter: PolicyAdapter, tau: number): PolicyHook {
  const base = adapter.policy();
  return tau === 1 ? base : (step) => base(step).map((v) => v / tau);
}
