import type { tf } from '../../core/backend.js';
import type { Rng } from '../../core/rng.js';
import type { BaseModelId } from '../adapter.js';
import type { Checkpoint } from '../checkpoint.js';
import type { ScoredRow } from '../score.js';
import type { ParamGroup } from '../tf-adam.js';

/** One objective's step on a scored batch: the loss, the gradients of the optimizer's variables, and its estimate of log Z. */
export interface ObjectiveStep {
  loss: number;
  grads: Map<tf.Variable, tf.Tensor>;
  /** TB: mean learned log Z(X); modified SubTB: mean log F(s_0) (NaN unless Z may be empty); soft Q: the soft value of s_0 */
  logZ: number;
}

/** What an objective's step may use besides the rows. */
export interface LossOptions {
  /** finished steps */
  step: number;
  rng: Rng;
  /** the optimizer's variables */
  vars: tf.Variable[];
  /** per row: the example it belongs to (rows of one X share it) and whether it was sampled on-policy (not tempered or replayed) */
  rowKey: string[];
  onPolicy: boolean[];
  /** which of the step's train.updatesPerBatch updates on this batch (0 = the first) */
  update: number;
}

/**
 * A fine-tuning objective on the LM side (one file per objective, as src/gfn for the
 * benchmarks). The trainer samples and scores a batch, then calls
 *   loss(rows) → optimizer step → afterStep(),
 * and lets the objective add its own optimizer groups and checkpoint state.
 */
export interface LmObjective {
  /** The sampler draws from softmax(logits/τ): τ = 1 for GFlowNets, 1/(1 − α) for Munchausen-DQN (eq. (MQ)). */
  readonly temperature: number;
  /** Whether scoring must compute the prefix rewards log R(z_1..t ⊤) (modified SubTB). */
  readonly prefixRewards: boolean;
  /** The policy variables' learning rate when the objective sets its own (soft Q: dqn.lr), else null. */
  readonly policyLr: number | null;
  /** Optimizer groups besides the adapter's policy variables (TB: log Z(X) at its own rate). */
  paramGroups(): ParamGroup[];
  /** Loss and gradients of `vars` (the optimizer's variables) on one scored batch; `step` counts finished steps. */
  loss(rows: ScoredRow[], o: LossOptions): ObjectiveStep;
  /** After a successful optimizer step (soft Q: the Polyak target update). */
  afterStep(): void;
  /** Frees what the objective holds beyond the adapter (the soft-Q target copy). */
  release?(): void;
  /** Checkpoint contributions: files written into the checkpoint folder, read back by restore. */
  save(dir: string, base: BaseModelId): void;
  restore(ck: Checkpoint, expect: { sha256: string; vocabSize: number }): void;
}
