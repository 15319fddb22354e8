/**
 * `adapter.kind: lora` behind the PolicyAdapter seam (adapter.ts): the policy is the model
 * with low-rank adapters inside (lora.ts), so its logits at a decision node come from the
 * tfjs forward of the row's tokens X z_1..j (ScoredRow.tokens), not from the stored hidden
 * state; sampling runs on the ONNX session with low-rank branches (samplingSession), fed with
 * the current factors whenever `policy()` snapshots the weights. log Z / log F stays the
 * head's flow part on the frozen hidden state (trained alongside when adapter.trainFlow).
 * Soft Q-learning (SoftDQN, M-DQN) stores each transition's token prefix (prefixLogits) and
 * takes its targets from a clone: a second set of factors over the same frozen weights, with
 * no sampling session of its own.
 */
import { UsageError } from '../core/errors.js';
import { tf } from '../core/backend.js';
import type { LmSession } from '../lm/session.js';
import type { PolicyHook } from '../lm/sampler.js';
import type { BaseModelId, PolicyAdapter } from './adapter.js';
import { LmHead } from './head.js';
import type { ScoredRow } from './score.js';
import { type FrozenModel, LoraAdapter, loadFrozenModel, loraNodeLogits, nestSequences, openLoraSession } from './lora.js';
import { matMulC } from '../lmbuild/tfops.js';

type T2 = tf.Tensor2D;

export class LoraPolicyAdapter implements PolicyAdapter {
  private constructor(
    readonly lora: LoraAdapter,
    /** the flow part (log F / log Z(X)) of a whitened head; its policy part is unused */
    readonly head: LmHead,
    readonly base: FrozenModel,
    /** the branched sampling session; null for a soft-Q target clone, which never samples */
    private readonly session: LmSession | null,
    private readonly trainFlow: boolean,
  ) {
    this.prefixWidth = base.config.nCtx;
  }

  readonly prefixWidth: number;

  /** Adapters for `dir` (the frozen weights read from its ONNX file) and the branched sampling session. */
  static async create(
    dir: string,
    frozen: LmSession,
    cfg: { rank: number; alpha: number; targets: string[] | null; trainFlow: boolean; seed: number; threads: number },
    head: LmHead,
  ): Promise<LoraPolicyAdapter> {
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
    return loraNodeLogits(
      this.base,
      this.lora,
      rows.map((r) => r.tokens.x),
      rows.map((r) => r.tokens.z),
      rows.map((r) => r.nodes),
    );
  }

  /**
   * Logits after each prefix (read at its last token). A replay batch repeats states and
   * nests them (X z_1 inside X z_1 z_2), and a causal forward of a row gives the logits after
   * each of its prefixes: so only the rows that are no prefix of another are run, each read
   * at the lengths of the prefixes it contains, and a 0/1 selection matMul (differentiable)
   * puts them back in the asked order — the same logits as one row per prefix, at a fraction
   * of the forward.
   */
  prefixLogits(prefixes: number[][]): T2 {
    const { rows, reads, index } = nestPrefixes(prefixes);
    // the rows' common start (the question X of a one-example buffer) as the shared X: run once
    let lcp = Math.min(...rows.map((r) => r.length));
    for (const r of rows) for (let i = 0; i < lcp; i++) if (r[i] !== rows[0][i]) lcp = i;
    const logits = loraNodeLogits(
      this.base,
      this.lora,
      rows.map((r) => r.slice(0, lcp)),
      rows.map((r) => r.slice(lcp)),
      reads.map((rd) => rd.map((n) => n - lcp)),
    );
    const N = reads.reduce((s, r) => s + r.length, 0);
    if (N === prefixes.length && index.every((k, i) => k === i)) return logits;
    const sel = new Float32Array(prefixes.length * N);
    index.forEach((k, i) => (sel[i * N + k] = 1));
    return matMulC(tf.tensor2d(sel, [prefixes.length, N]), logits);
  }

  logitsSync(): Float32Array {
    throw new Error('LoRA logits depend on the token prefix: use prefixLogits');
  }

  logFlow(hidden: T2): tf.Tensor1D {
    return this.head.logFlow(hidden);
  }

  setFlowBias(v: number): void {
    this.head.setFlowBias(v);
  }

  /** Feeds the current factors to the sampling session; the session's own logits are the policy. */
  policy(): PolicyHook {
    this.lora.feedsInto(this.samplingSession());
    return (step) => step.logits;
  }

  samplingSession(): LmSession {
    if (!this.session) throw new Error('a LoRA target clone has no sampling session');
    return this.session;
  }

  /** The same factors (and flow head) over the same frozen weights, without a sampling session. */
  clone(): LoraPolicyAdapter {
    const lora = new LoraAdapter(this.lora.facts, this.lora.config, 0);
    lora.setFactors(this.lora.factors());
    return new LoraPolicyAdapter(lora, this.head.clone(), this.base, null, false);
  }

  /** factors ← (1 − τ)·factors + τ·source's factors. */
  polyakFrom(source: PolicyAdapter, tau: number): void {
    if (!(source instanceof LoraPolicyAdapter)) throw new Error('polyakFrom: source is not a LoRA adapter');
    for (const [n, v] of this.lora.vars) {
      const src = source.lora.vars.get(n)!;
      for (const [t, s] of [
        [v.a, src.a],
        [v.b, src.b],
      ] as const)
        tf.tidy(() => t.assign(tau === 1 ? s : tf.add(tf.mul(t, 1 - tau), tf.mul(s, tau))));
    }
  }

  /** head.json/.safetensors (flow part, whitening) and adapter.json/.safetensors side by side. */
  save(dir: string, base: BaseModelId): void {
    this.head.save(dir, base);
    this.lora.save(dir, base);
  }

  restore(dir: string, expect: { sha256: string; vocabSize: number }): void {
    this.head.restore(dir, expect);
    const { adapter } = LoraAdapter.load(dir, this.lora.facts, { sha256: expect.sha256 });
    this.lora.setFactors(adapter.factors());
    adapter.dispose();
    if (this.session) this.lora.feedsInto(this.session);
  }

  dispose(): void {
    this.lora.dispose();
    this.head.dispose();
  }

  /** A target clone shares the frozen weights and has no session: it releases only its own factors. */
  async release(): Promise<void> {
    this.dispose();
    if (!this.session) return;
    for (const t of this.base.params.values()) t.dispose();
    await this.session.release();
  }
}

/**
 * The distinct rows a set of token prefixes needs: `rows` are the prefixes that are no prefix
 * of another, `reads[r]` the distinct prefix lengths read from row r (ascending, each length
 * once over all rows), and `index[i]` the position of prefix i in the stacked reads (rows in
 * order, reads in order within a row), as loraNodeLogits stacks them.
 */
export function nestPrefixes(prefixes: number[][]): { rows: number[][]; reads: number[][]; index: number[] } {
  if (prefixes.some((p) => p.length === 0)) throw new Error('nestPrefixes: an empty prefix has no logits to read');
  const { kept, of: where } = nestSequences(prefixes);
  const rows = kept.map((i) => prefixes[i]);
  const reads: number[][] = rows.map(() => []);
  prefixes.forEach((p, i) => {
    const rd = reads[where[i]];
    if (!rd.includes(p.length)) rd.push(p.length);
  });
  for (const rd of reads) rd.sort((a, b) => a - b);
  const offset: number[] = [];
  let o = 0;
  for (const rd of reads) {
    offset.push(o);
    o += rd.length;
  }
  const index = prefixes.map((p, i) => offset[where[i]] + reads[where[i]].indexOf(p.length));
  return { rows, reads, index };
}
