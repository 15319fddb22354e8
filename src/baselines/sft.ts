/**
 * Supervised fine-tuning baseline: the same LoRA-style head as the GFlowNet runs (same
 * whitening from the same seeded rollouts, same optimizer and schedule), trained by maximum
 * likelihood on the gold rationales: minimize −(1/B) Σ_b Σ_t log P_F(a_t | s_t) over the
 * decision states of gold Z (tool tokens are not actions; the final stop is). Only examples
 * with a gold Z are used (arithmetic: train_50; infill: the removed spans of training items).
 */
import { tf } from '../core/backend.js';
import { UsageError } from '../core/errors.js';
import type { StepMetrics } from '../finetune/trainer.js';
import type { FineTuneSetup } from '../finetune/setup.js';
import { scoreRows, type ScoredRow } from '../finetune/score.js';
import { disposeNodes, nodeLogPolicy, pick, stackNodes } from '../finetune/nodes.js';
import type { ZSample } from '../finetune/rollout.js';

export class SftBaseline {
  private constructor(
    readonly trainer: FineTuneSetup,
    private readonly rows: ScoredRow[],
    /** gold rationales left out because the constraints cannot produce them */
    readonly infeasible = 0,
  ) {}

  static async create(trainer: FineTuneSetup): Promise<SftBaseline> {
    const gold = trainer.examples.filter((e) => e.gold);
    if (gold.length === 0)
      throw new UsageError('supervised fine-tuning needs examples with gold rationales (e.g. task.train files with str_rationale)');
    const rows: ScoredRow[] = [];
    for (let i = 0; i < gold.length; i += 64) {
      const part = gold.slice(i, i + 64);
      rows.push(
        ...(await scoreRows(
          trainer.session,
          part.map((e) => e.xIds),
          part.map((e) => e.gold as ZSample),
          part.map((e) => e.yIds),
          trainer.constraints,
          trainer.rewardSpec(),
          { prefix: false },
        )),
      );
    }
    // a gold Z the policy cannot produce (longer than z.maxLength, a token outside z.allowed)
    // has a masked action: its log-likelihood is −1e9, so it is left out
    const V = trainer.session.vocabSize;
    const feasible = rows.filter((r) => r.actions.every((a, i) => r.mask[i * V + a] === 1));
    if (feasible.length === 0)
      throw new UsageError(
        `none of the ${rows.length} gold rationales fits the Z constraints (z.maxLength ${trainer.constraints.maxLength}, z.allowed)`,
      );
    return new SftBaseline(trainer, feasible, rows.length - feasible.length);
  }

  get goldCount(): number {
    return this.rows.length;
  }

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const t = this.trainer,
      cfg = t.cfg,
      B = cfg.train.batchSize;
    const batch = Array.from({ length: B }, () => this.rows[t.rng.int(this.rows.length)]);
    const nodes = stackNodes(batch, t.session.hiddenSize, t.session.vocabSize, t.constraints.stopId);
    const vars = t.adapter.policyVariables();
    let loss: number, gradNorm: number;
    try {
      const { value, grads } = tf.variableGrads(
        () => tf.neg(tf.div(tf.sum(pick(nodeLogPolicy(t.adapter, nodes), nodes.chosen)), B)) as tf.Scalar,
        vars,
      );
      loss = value.dataSync()[0];
      value.dispose();
      const g = new Map(vars.map((v) => [v, grads[v.name]]));
      gradNorm = t.optim.step(g, t.lrScale(), cfg.optim.clip);
      tf.dispose(Object.values(grads));
    } finally {
      disposeNodes(nodes);
    }
    return t.finishStep('SFT', loss, gradNorm, batch, t0);
  }
}
