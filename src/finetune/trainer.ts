import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, selectBackend } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { LmSession } from '../lm/session.js';
import { loadHfTokenizer, type Tokenizer } from '../lm/tokenizer.js';
import { resolveModelDir } from '../lm/resolve.js';
import { LmHead, headConfig } from './head.js';
import { scheduleAt, type TrainConfig } from './schema.js';
import { loadExamples, type Example } from './examples.js';
import { epsilonMix, sampleZ, type ZConstraints, type ZSample } from './rollout.js';
import { scoreRows, type ScoredRow } from './score.js';
import { disposeNodes, gfnLoss, nodeLogPolicy, pick, stackNodes } from './objective.js';
import { TfAdam, lrScaleAt } from './tf-adam.js';
import { RationaleReplay } from './replay.js';
import { TokenSoftQ } from './soft-q.js';
import { loadLatestCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.js';

export interface StepMetrics {
  step: number;
  loss: number;
  meanLogR: number;
  logZ: number;
  gradNorm: number;
  rewardTemperature: number;
  samples: number;
  seconds: number;
}

/** A run stopped on a non-finite loss or gradient; the last good state was saved. */
export class DivergedError extends Error {
  readonly exitCode = 3;
}

/**
 * Token-level GFlowNet / soft-RL fine-tuning of the LoRA-style head on a frozen ONNX LM
 * (docs/design.md §2 (LM), §4). One step: sample Z for a batch of (X, Y) (on-policy with ε,
 * tempered, replay), score X Z Y with the frozen LM (one forward; prefix rewards for SubTB),
 * then TB / modified SubTB through the head, or a soft Q update from the transition buffer.
 */
export class LmTrainer {
  step = 0;
  private lastRows: ScoredRow[] = [];
  /** The latest batch as text (for samples.jsonl in the run folder). */
  lastSamples: { x: string; z: string; y: string; logR: number }[] = [];

  private constructor(
    readonly cfg: TrainConfig,
    readonly session: LmSession,
    readonly tok: Tokenizer,
    readonly head: LmHead,
    readonly examples: Example[],
    readonly constraints: ZConstraints,
    readonly rng: Rng,
    readonly optim: TfAdam,
    readonly replay: RationaleReplay,
    readonly dqn: TokenSoftQ | null,
    readonly modelId: string,
  ) {}

  static async create(cfg: TrainConfig): Promise<LmTrainer> {
    const { dir, session, tok } = await openModel(cfg);
    const examples = loadExamples(cfg, tok);
    const constraints = zConstraints(cfg, tok);
    for (const ex of examples) {
      const need = ex.xIds.length + cfg.z.maxLength + 8 + ex.yIds.length;
      if (need > session.facts.nCtx)
        throw new UsageError(`X + Z + Y can reach ${need} tokens (X "${ex.x.slice(0, 40)}…"), more than the model's context window of ${session.facts.nCtx}; shorten X or z.maxLength`);
    }
    const rng = new Rng(cfg.seed);
    const hc = headConfig({ kind: cfg.head.kind, rank: cfg.head.rank, alpha: cfg.head.alpha ?? 2 * cfg.head.rank, width: cfg.head.width, hiddenSize: session.hiddenSize, vocabSize: session.vocabSize });
    const head = new LmHead(hc, cfg.seed);
    const isDqn = cfg.objective === 'softdqn' || cfg.objective === 'mdqn';
    const groups = [{ vars: head.trainableVariables(false), lr: cfg.optim.lr }];
    if (cfg.objective === 'tb') groups.push({ vars: [...head.flowParams.values()], lr: cfg.optim.logZLr });
    const optim = new TfAdam(groups, { weightDecay: cfg.optim.weightDecay, decoupled: cfg.optim.optimizer === 'adamw' });
    const replay = new RationaleReplay(cfg.replay.perKey);
    const whitenRng = rng.fork();
    const t = new LmTrainer(cfg, session, tok, head, examples, constraints, rng, optim, replay, null, dir);
    const hidden = await t.whiteningStates(whitenRng);
    head.fitWhitening(hidden);
    let dqn: TokenSoftQ | null = null;
    if (isDqn) {
      const target = new LmHead(hc, cfg.seed);
      target.fitWhitening(hidden);
      dqn = new TokenSoftQ(head, target, session.hiddenSize, session.vocabSize, {
        alpha: cfg.objective === 'mdqn' ? cfg.dqn.munchausenAlpha : 0,
        l0: cfg.dqn.l0,
        bufferSize: cfg.dqn.bufferSize,
        replayBatch: cfg.dqn.replayBatch,
        polyak: cfg.dqn.polyak,
        huber: cfg.dqn.huber,
        perAlpha: cfg.dqn.perAlpha,
      });
    }
    if (cfg.replay.seedWithGold && cfg.exploration.replay > 0) for (const ex of examples) if (ex.gold) replay.add(ex.key, ex.gold, 0);
    return new LmTrainer(cfg, session, tok, head, examples, constraints, rng, optim, replay, dqn, dir);
  }

  /** Hidden states of random base-model rollouts: what the frozen whitening is fitted on (docs/design.md §4). */
  private async whiteningStates(rng: Rng): Promise<Float32Array> {
    const n = this.cfg.head.whitenRollouts;
    const exs = Array.from({ length: n }, () => this.examples[rng.int(this.examples.length)]);
    const zs = await sampleZ(this.session, this.tok, exs.map((e) => e.xIds), { constraints: this.constraints, temperature: 1, rng });
    const rows = await scoreRows(this.session, exs.map((e) => e.xIds), zs, exs.map((e) => e.yIds), this.constraints, this.rewardSpec(), { prefix: false });
    return concat(rows.map((r) => r.hidden));
  }

  rewardSpec() {
    return { prior: this.cfg.reward.prior, likelihoodWeight: this.cfg.reward.likelihoodWeight, temperature: scheduleAt(this.cfg.reward.temperature, this.step) };
  }

  /** The sampler policy: softmax(logits) for GFlowNets, softmax(Q/τ) for soft Q-learning. */
  policyHook(epsilon: number) {
    const base = this.head.policy();
    const tau = this.dqn?.tau ?? 1;
    const scaled = tau === 1 ? base : (step: Parameters<typeof base>[0]) => base(step).map((v) => v / tau);
    return epsilonMix(scaled, epsilon, this.session.vocabSize, this.constraints.allowedIds);
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
    const onRows: number[] = [], tempRows: number[] = [];
    for (let b = 0; b < B; b++) if (!zs[b]) (b >= B - nRep - nTemp && b < B - nRep ? tempRows : onRows).push(b);
    const eps = scheduleAt(e.epsilon, this.step);
    if (onRows.length > 0) {
      const out = await sampleZ(this.session, this.tok, onRows.map((b) => exs[b].xIds), { constraints: this.constraints, temperature: 1, policy: this.policyHook(eps), rng });
      onRows.forEach((b, i) => (zs[b] = out[i]));
    }
    if (tempRows.length > 0) {
      const [lo, hi] = e.temperatureRange;
      const T = lo + (hi - lo) * rng.uniform();
      const out = await sampleZ(this.session, this.tok, tempRows.map((b) => exs[b].xIds), { constraints: this.constraints, temperature: T, policy: this.policyHook(0), rng });
      tempRows.forEach((b, i) => (zs[b] = out[i]));
    }
    const reward = this.rewardSpec();
    const rows = await scoreRows(this.session, exs.map((x) => x.xIds), zs as ZSample[], exs.map((x) => x.yIds), this.constraints, reward, { prefix: cfg.objective === 'subtb' });
    this.lastRows = rows;
    this.lastSamples = rows.map((r, b) => ({ x: exs[b].x, z: this.tok.decode(zs[b]!.tokens), y: exs[b].y, logR: r.logR }));
    if (e.replay > 0) rows.forEach((r, b) => this.replay.add(exs[b].key, zs[b]!, r.logR));

    let loss: number, grads: Map<tf.Variable, tf.Tensor>, logZ: number;
    const vars = this.optim.variables;
    if (this.dqn) {
      this.dqn.addRows(rows);
      ({ loss, grads } = this.dqn.update(rng, vars));
      logZ = this.valueAtRoot(rows);
    } else {
      const nodes = stackNodes(rows, this.session.hiddenSize, this.session.vocabSize, this.constraints.stopId);
      try {
        if (this.step === 0 && cfg.objective === 'tb') this.initLogZ(nodes);
        const r = gfnLoss(this.head, nodes, cfg.objective as 'tb' | 'subtb', cfg.subtb.lambda, vars);
        ({ loss, grads } = r);
        logZ = r.logZ.reduce((s, v) => s + v, 0) / B;
      } finally {
        disposeNodes(nodes);
      }
    }
    const scale = lrScaleAt(this.step, cfg.train.steps, cfg.optim.warmup, cfg.optim.finalLrFraction);
    let gradNorm = NaN;
    if (Number.isFinite(loss)) gradNorm = this.optim.step(grads, scale, cfg.optim.clip);
    tf.dispose([...grads.values()]);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new DivergedError(`${Number.isFinite(loss) ? 'gradient norm' : 'loss'} became ${Number.isFinite(loss) ? gradNorm : loss} at step ${this.step + 1}`);
    }
    this.dqn?.syncTarget();
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

  /** TB: start log Z(X) at the first batch's mean of log R − Σ log P_F (docs/design.md §4). */
  private initLogZ(nodes: ReturnType<typeof stackNodes>): void {
    const lp = tf.tidy(() => pick(nodeLogPolicy(this.head, nodes), nodes.chosen).dataSync());
    let s = 0;
    nodes.rows.forEach((r, b) => {
      let sum = 0;
      for (let i = 0; i < r.nodes.length; i++) sum += lp[nodes.first[b] + i];
      s += r.logR - sum;
    });
    this.head.setFlowBias(s / nodes.rows.length);
  }

  /** Soft value at the root, τ·LSE(Q(s0, ·)/τ) + shift: the soft-RL estimate of log Z (eq. (M)). */
  private valueAtRoot(rows: ScoredRow[]): number {
    const d = this.session.hiddenSize, V = this.session.vocabSize;
    const h = new Float32Array(rows.length * d), base = new Float32Array(rows.length * V);
    rows.forEach((r, b) => {
      h.set(r.hidden.subarray(0, d), b * d);
      base.set(r.baseLogits.subarray(0, V), b * V);
    });
    const q = this.head.logitsSync(h, base, rows.length);
    const tau = this.dqn!.tau;
    let s = 0;
    rows.forEach((r, b) => {
      let m = -Infinity;
      for (let v = 0; v < V; v++) if (r.mask[v]) m = Math.max(m, q[b * V + v] / tau);
      let z = 0;
      for (let v = 0; v < V; v++) if (r.mask[v]) z += Math.exp(q[b * V + v] / tau - m);
      s += tau * (m + Math.log(z));
    });
    return s / rows.length + (this.dqn!.shift ?? 0);
  }

  get recentRows(): ScoredRow[] {
    return this.lastRows;
  }

  /** Everything needed to continue exactly: head, optimizer moments, RNG, replay, step. */
  saveCheckpoint(runDir: string): string {
    return saveCheckpoint(runDir, this.step, (dir) => {
      const base = { id: this.cfg.model, sha256: this.session.modelHash };
      this.head.save(join(dir, 'head'), base);
      if (this.dqn) this.dqn.target.save(join(dir, 'target'), base);
      writeFileSync(join(dir, 'optimizer.json'), JSON.stringify(this.optim.getState()));
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ step: this.step, rng: this.rng.state(), replay: this.replay.toJSON() }));
      if (this.dqn) {
        mkdirSync(join(dir, 'transitions'));
        for (const [name, bytes] of Object.entries(this.dqn.exportBuffer())) writeFileSync(join(dir, 'transitions', name), bytes);
      }
    });
  }

  /** Restores a checkpoint (by default the newest intact one of a run folder) into this (freshly created) trainer. */
  restore(runDir: string, ck: Checkpoint = loadLatestCheckpoint(runDir)): void {
    const base = { sha256: this.session.modelHash, vocabSize: this.session.vocabSize };
    const { head } = LmHead.load(join(ck.dir, 'head'), base);
    copyAll(this.head, head);
    head.dispose();
    if (this.dqn) {
      const { head: target } = LmHead.load(join(ck.dir, 'target'), base);
      copyAll(this.dqn.target, target);
      target.dispose();
    }
    this.optim.setState(JSON.parse(readFileSync(join(ck.dir, 'optimizer.json'), 'utf8')));
    const st = JSON.parse(readFileSync(join(ck.dir, 'state.json'), 'utf8'));
    this.step = st.step;
    this.rng.setState(st.rng);
    this.replay.restore(st.replay);
    if (this.dqn) this.dqn.importBuffer((name) => ck.files.get(`transitions/${name}`)!);
  }
}

/** The frozen LM and its tokenizer for a config (backend selected, ORT threads from train.threads). */
export async function openModel(cfg: TrainConfig): Promise<{ dir: string; session: LmSession; tok: Tokenizer }> {
  await selectBackend();
  const dir = await resolveModelDir(cfg.model);
  const session = await LmSession.open(dir, { threads: cfg.train.threads });
  const tok = await loadHfTokenizer(dir, session.facts.eosTokenId, session.vocabSize);
  return { dir, session, tok };
}

export function zConstraints(cfg: TrainConfig, tok: Tokenizer): ZConstraints {
  const oneToken = (key: string, s: string) => {
    const ids = tok.encode(s);
    if (ids.length !== 1) throw new UsageError(`${key}: "${s}" is ${ids.length} tokens, not one`);
    return ids[0];
  };
  const stopId = cfg.z.stop === null ? tok.eosTokenId : oneToken('z.stop', cfg.z.stop);
  let allowedIds: number[] | null = cfg.z.allowed ? cfg.z.allowed.map((s) => oneToken('z.allowed', s)) : null;
  // with a stop token other than EOS, EOS itself is no token of Z
  if (!allowedIds && stopId !== tok.eosTokenId) allowedIds = Array.from({ length: tok.vocabSize }, (_, i) => i).filter((i) => i !== tok.eosTokenId && i !== stopId);
  if (allowedIds?.includes(stopId)) throw new UsageError(`z.allowed must not contain the stop token "${cfg.z.stop}"`);
  return { minLength: cfg.z.minLength, maxLength: cfg.z.maxLength, allowedIds, tool: cfg.z.tool, stopId };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Copies the trainable variables of a loaded head into a live one. The frozen whitening is
 * not copied: a resumed trainer refits it from the same seed and rollouts, which gives the
 * same matrix (the resume test checks the end result).
 */
function copyAll(into: LmHead, from: LmHead): void {
  for (const [n, v] of from.params) into.params.get(n)!.assign(v);
  for (const [n, v] of from.flowParams) into.flowParams.get(n)!.assign(v);
}
