/**
 * `adapter.kind: lora` behind the PolicyAdapter seam (adapter.ts): the policy is the model
 * with low-rank adapters inside (lora.ts), so its logits at a decision node come from the
 * tfjs forward of the row's tokens X z_1..j (ScoredRow.tokens), not from the stored hidden
 * state; sampling runs on the ONNX session with low-rank branches (samplingSession), fed with
 * the current factors whenever `policy()` snapshots the weights. log Z / log F stays the
 * head's flow part on the frozen hidden state (trained alongside when adapter.trainFlow).
 * Soft Q-learning (targets from stored states, a cloned target network) is not supported.
 */
import { UsageError } from '../core/errors.js';
import type { tf } from '../core/backend.js';
import type { LmSession } from '../lm/session.js';
import type { PolicyHook } from '../lm/sampler.js';
import type { BaseModelId, PolicyAdapter } from './adapter.js';
import { LmHead } from './head.js';
import type { ScoredRow } from './score.js';
import { type FrozenModel, LoraAdapter, loadFrozenModel, loraNodeLogits, openLoraSession } from './lora.js';

type T2 = tf.Tensor2D;

export class LoraPolicyAdapter implements PolicyAdapter {
  private constructor(
    readonly lora: LoraAdapter,
    /** the flow part (log F / log Z(X)) of a whitened head; its policy part is unused */
    readonly head: LmHead,
    readonly base: FrozenModel,
    readonly session: LmSession,
    private readonly trainFlow: boolean,
  ) {}

  /** Adapters for `dir` (the frozen weights read from its ONNX file) and the branched sampling session. */
  static async create(dir: string, frozen: LmSession, cfg: { rank: number; alpha: number; targets: string[] | null; trainFlow: boolean; seed: number; threads: number }, head: LmHead): Promise<LoraPolicyAdapter> {
    const lora = new LoraAdapter(frozen.facts, { rank: cfg.rank, alpha: cfg.alpha, targets: cfg.targets }, cfg.seed);
    const base = loadFrozenModel(dir);
    if (base.sha256 !== frozen.modelHash) throw new UsageError(`${dir}: model file changed while opening it`);
    return new LoraPolicyAdapter(lora, head, base, await openLoraSession(dir, lora, { threads: cfg.threads }), cfg.trainFlow);
  }

  /** A saved LoRA policy (checkpoint folder `dir` written by save) over the model folder `modelDir`. */
  static async load(dir: string, modelDir: string, frozen: LmSession, threads = 1): Promise<LoraPolicyAdapter> {
    const { head } = LmHead.load(dir, { sha256: frozen.modelHash, vocabSize: frozen.vocabSize });
    const { adapter } = LoraAdapter.load(dir, frozen.facts, { sha256: frozen.modelHash });
    return new LoraPolicyAdapter(adapter, head, loadFrozenModel(modelDir), await openLoraSession(modelDir, adapter, { threads }), false);
  }

  policyVariables(): tf.Variable[] {
    return this.lora.trainableVariables();
  }

  flowVariables(): tf.Variable[] {
    return this.trainFlow ? this.head.flowVariables() : [];
  }

  /** Needs the rows: the adapted model's logits depend on the whole prefix, not on the frozen hidden state. */
  logits(_hidden: T2, _base: T2, rows?: ScoredRow[]): T2 {
    if (!rows) throw new Error('LoRA logits need the scored rows (their tokens)');
    return loraNodeLogits(this.base, this.lora, rows.map((r) => r.tokens.x), rows.map((r) => r.tokens.z), rows.map((r) => r.nodes));
  }

  logitsSync(): Float32Array {
    throw new UsageError('adapter.kind lora trains tb and subtb; soft Q-learning still needs adapter.kind head');
  }

  logFlow(hidden: T2): tf.Tensor1D {
    return this.head.logFlow(hidden);
  }

  setFlowBias(v: number): void {
    this.head.setFlowBias(v);
  }

  /** Feeds the current factors to the sampling session; the session's own logits are the policy. */
  policy(): PolicyHook {
    this.lora.feedsInto(this.session);
    return (step) => step.logits;
  }

  samplingSession(): LmSession {
    return this.session;
  }

  clone(): PolicyAdapter {
    throw new UsageError('adapter.kind lora trains tb and subtb; soft Q-learning still needs adapter.kind head');
  }

  polyakFrom(): void {
    throw new UsageError('adapter.kind lora trains tb and subtb; soft Q-learning still needs adapter.kind head');
  }

  /** head.json/.safetensors (flow part, whitening) and adapter.json/.safetensors side by side. */
  save(dir: string, base: BaseModelId): void {
    this.head.save(dir, base);
    this.lora.save(dir, base);
  }

  restore(dir: string, expect: { sha256: string; vocabSize: number }): void {
    this.head.restore(dir, expect);
    const { adapter } = LoraAdapter.load(dir, this.session.facts, { sha256: expect.sha256 });
    this.lora.setFactors(adapter.factors());
    adapter.dispose();
    this.lora.feedsInto(this.session);
  }

  dispose(): void {
    this.lora.dispose();
    this.head.dispose();
  }
}
