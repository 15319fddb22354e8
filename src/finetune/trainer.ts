import { tf } from '../core/backend.js';
import { scheduleAt, type TrainConfig } from './schema.js';
import { epsilonMix, sampleZ, type ZSample } from './rollout.js';
import { scoreRows } from './score.js';
import { temperedPolicy } from './adapter.js';
import { RationaleReplay } from './replay.js';
import { DivergedError, FineTuneSetup, prepareFineTune, type FineTuneParts, type StepMetrics } from './setup.js';
import { createObjective, type LmObjective } from './objectives/index.js';
import type { Checkpoint } from './checkpoint.js';

export { DivergedError, type StepMetrics } from './setup.js';

/**
 * Token-level GFlowNet / soft-RL fine-tuning of the adapter on a frozen ONNX LM
 * (docs/design.md §2 (LM), §4). One step: sample Z for a batch of (X, Y) (on-policy with ε,
 * tempered, replay), score X Z Y with the frozen LM (one forward; prefix rewards where the
 * objective needs them), then the objective's loss → optimizer step → its after-step hook.
 * The objective (objectives/: TB, modified SubTB, SoftDQN / M-DQN) is the only part that
 * differs between them.
 */
export class LmTrainer extends FineTuneSetup {
  /** The latest batch as text (for samples.jsonl in the run folder). */
  lastSamples: { x: string; z: string; y: string; logR: number }[] = [];
  readonly replay: RationaleReplay;

  private constructor(
    parts: FineTuneParts,
    readonly objective: LmObjective,
  ) {
    super(parts, objective.paramGroups(), objective.policyLr);
    this.replay = new RationaleReplay(parts.cfg.replay.perKey);
  }

  static override async create(cfg: TrainConfig): Promise<LmTrainer> {
    const parts = await prepareFineTune(cfg);
    const objective = createObjective(cfg, parts.adapter, {
      d: parts.session.hiddenSize,
      V: parts.session.vocabSize,
      stopId: parts.constraints.stopId,
    });
    const t = new LmTrainer(parts, objective);
    if (cfg.replay.seedWithGold && cfg.exploration.replay > 0) for (const ex of t.examples) if (ex.gold) t.replay.add(ex.key, ex.gold, 0);
    return t;
  }

  override async release(): Promise<void> {
    this.objective.release?.();
    await super.release();
  }

  /** The sampler policy: softmax(logits/τ) with the objective's τ, mixed with ε-uniform. */
  policyHook(epsilon: number) {
    return epsilonMix(
      temperedPolicy(this.adapter, this.objective.temperature),
      epsilon,
      this.session.vocabSize,
      this.constraints.allowedIds,
    );
  }

  async trainStep(): Promise<StepMetrics> {
    const t0 = performance.now();
    const { cfg, rng } = this;
    const B = cfg.train.batchSize;
    const e = cfg.exploration;
    const exs = Array.from({ length: B }, () => this.examples[rng.int(this.examples.length)]);
    const nTemp = Math.round(B * e.tempered);
    const nRep = Math.round(B * e.replay);
    const zs: (ZSample | null)[] = new Array(B).fill(null);
    for (let b = B - nRep; b < B; b++) zs[b] = this.replay.sample(exs[b].key, rng);
    const onRows: number[] = [],
      tempRows: number[] = [];
    for (let b = 0; b < B; b++) if (!zs[b]) (b >= B - nRep - nTemp && b < B - nRep ? tempRows : onRows).push(b);
    const eps = scheduleAt(e.epsilon, this.step);
    if (onRows.length > 0) {
      const out = await sampleZ(
        this.samplingSession,
        this.tok,
        onRows.map((b) => exs[b].xIds),
        { constraints: this.constraints, temperature: 1, policy: this.policyHook(eps), rng },
      );
      onRows.forEach((b, i) => (zs[b] = out[i]));
    }
    if (tempRows.length > 0) {
      const [lo, hi] = e.temperatureRange;
      const T = lo + (hi - lo) * rng.uniform();
      const out = await sampleZ(
        this.samplingSession,
        this.tok,
        tempRows.map((b) => exs[b].xIds),
        { constraints: this.constraints, temperature: T, policy: this.policyHook(0), rng },
      );
      tempRows.forEach((b, i) => (zs[b] = out[i]));
    }
    const reward = this.rewardSpec();
    const rows = await scoreRows(
      this.session,
      exs.map((x) => x.xIds),
      zs as ZSample[],
      exs.map((x) => x.yIds),
      this.constraints,
      reward,
      { prefix: this.objective.prefixRewards },
    );
    this.lastSamples = rows.map((r, b) => ({ x: exs[b].x, z: this.tok.decode(zs[b]!.tokens), y: exs[b].y, logR: r.logR }));
    if (e.replay > 0) rows.forEach((r, b) => this.replay.add(exs[b].key, zs[b]!, r.logR));

    const onPolicy = new Array<boolean>(B).fill(false);
    for (const b of onRows) onPolicy[b] = true;
    // train.updatesPerBatch optimizer updates on this batch (TB / SubTB are off-policy, so a
    // sampled batch may be reused); the loss reported is the first one, before the batch taught anything
    const rowKey = exs.map((x) => x.key);
    let first: { loss: number; logZ: number; gradNorm: number } | null = null;
    for (let u = 0; u < cfg.train.updatesPerBatch; u++) {
      const { loss, grads, logZ } = this.objective.loss(rows, {
        step: this.step,
        rng,
        vars: this.optim.variables,
        rowKey,
        onPolicy,
        update: u,
      });
      let gradNorm = NaN;
      if (Number.isFinite(loss)) gradNorm = this.optim.step(grads, this.lrScale(), cfg.optim.clip);
      tf.dispose([...grads.values()]);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new DivergedError(
          `${Number.isFinite(loss) ? 'gradient norm' : 'loss'} became ${Number.isFinite(loss) ? gradNorm : loss} at step ${this.step + 1}`,
        );
      }
      first ??= { loss, logZ, gradNorm };
    }
    const { loss, logZ, gradNorm } = first!;
    this.objective.afterStep();
    this.step++;
    return {
      step: this.step,
      loss,
      meanLogR: rows.reduce((s, r) => s + r.logR, 0) / B,
      logZ,
      gradNorm,
      rewardTemperature: reward.temperature,
      samples: B,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /** Everything needed to continue exactly: adapter, optimizer moments, RNG, replay, step, the objective's state. */
  override saveCheckpoint(runDir: string): string {
    const base = { id: this.cfg.model, sha256: this.session.modelHash };
    return super.saveCheckpoint(runDir, { state: { replay: this.replay.toJSON() }, write: (dir) => this.objective.save(dir, base) });
  }

  /** Restores a checkpoint (by default the newest intact one of a run folder) into this (freshly created) trainer. */
  restore(runDir: string, from?: Checkpoint): void {
    const { ck, state } = this.restoreCheckpoint(runDir, from);
    this.replay.restore(state.replay as ReturnType<RationaleReplay['toJSON']>);
    this.objective.restore(ck, { sha256: this.session.modelHash, vocabSize: this.session.vocabSize });
  }
}
