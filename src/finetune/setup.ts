import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { LmSession } from '../lm/session.js';
import { loadHfTokenizer, type Tokenizer, samplableIds } from '../lm/tokenizer.js';
import { resolveModelDir } from '../lm/resolve.js';
import type { PolicyAdapter } from './adapter.js';
import { LmHead, headConfig } from './head.js';
import { LoraPolicyAdapter } from './lora-adapter.js';
import { scheduleAt, type TrainConfig } from './schema.js';
import { loadExamples, type Example } from './examples.js';
import { sampleZ, type ZConstraints } from './rollout.js';
import { scoreRows, type RewardSpec, type ScoredRow } from './score.js';
import { lrScaleAt } from '../core/adam.js';
import { TfAdam, type ParamGroup } from './tf-adam.js';
import { hasCheckpoint, loadLatestCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.js';

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

/** Everything a fine-tuning method starts from, before any training. */
export interface FineTuneParts {
  cfg: TrainConfig;
  session: LmSession;
  tok: Tokenizer;
  examples: Example[];
  constraints: ZConstraints;
  rng: Rng;
  adapter: PolicyAdapter;
}

/**
 * Opens the frozen LM, loads the examples, checks they fit the context window, and creates the
 * adapter with its whitening fitted on seeded base-model rollouts (docs/design.md §4). The
 * RNG is forked once for those rollouts, so every method built from the same config and seed
 * (GFlowNet objectives, soft Q-learning, SFT, REINFORCE) starts from the same adapter and RNG.
 */
export async function prepareFineTune(cfg: TrainConfig): Promise<FineTuneParts> {
  const { dir, session, tok } = await openModel(cfg);
  const examples = loadExamples(cfg, tok);
  const constraints = zConstraints(cfg, tok);
  for (const ex of examples) {
    const need = ex.xIds.length + cfg.z.maxLength + 8 + ex.yIds.length;
    if (need > session.facts.nCtx)
      throw new UsageError(
        `X + Z + Y can reach ${need} tokens (X "${ex.x.slice(0, 40)}…"), more than the model's context window of ${session.facts.nCtx}; shorten X or z.maxLength`,
      );
  }
  const rng = new Rng(cfg.seed);
  const whitenRng = rng.fork();
  const n = cfg.head.whitenRollouts;
  const exs = Array.from({ length: n }, () => examples[whitenRng.int(examples.length)]);
  const zs = await sampleZ(
    session,
    tok,
    exs.map((e) => e.xIds),
    { constraints, temperature: 1, rng: whitenRng },
  );
  const rows = await scoreRows(
    session,
    exs.map((e) => e.xIds),
    zs,
    exs.map((e) => e.yIds),
    constraints,
    rewardSpecAt(cfg, 0),
    { prefix: false },
  );
  const adapter = await createAdapter(cfg, dir, session, concat(rows.map((r) => r.hidden)));
  if (cfg.adapter.init) initAdapter(adapter, cfg.adapter.kind, cfg.adapter.init, session);
  return { cfg, session, tok, examples, constraints, rng, adapter };
}

/**
 * Starts `adapter` from the adapter weights of another run's latest checkpoint (adapter.init):
 * before any objective exists, so an objective that copies the policy (soft-Q's target
 * network) copies the started one.
 */
function initAdapter(adapter: PolicyAdapter, kind: 'head' | 'lora', runDir: string, session: LmSession): void {
  if (!existsSync(runDir)) throw new UsageError(`adapter.init: run folder ${runDir} does not exist`);
  if (!hasCheckpoint(runDir)) throw new UsageError(`adapter.init: ${runDir} holds no checkpoint to start from`);
  const ck = loadLatestCheckpoint(runDir, (l) => process.stderr.write(`flowtune: warning: ${l}\n`));
  const saved = existsSync(join(ck.dir, 'head', 'adapter.json')) ? 'lora' : 'head';
  if (saved !== kind) throw new UsageError(`adapter.init: ${runDir} holds a ${saved} adapter; this run trains adapter.kind ${kind}`);
  adapter.restore(join(ck.dir, 'head'), { sha256: session.modelHash, vocabSize: session.vocabSize });
}

/**
 * The adapter a config asks for: the LoRA-style head of docs/design.md §4, its frozen
 * whitening fitted on `whiteningStates` (hidden states of random base-model rollouts).
 */
async function createAdapter(cfg: TrainConfig, dir: string, session: LmSession, whiteningStates: Float32Array): Promise<PolicyAdapter> {
  const h = cfg.head;
  const head = new LmHead(
    headConfig({
      kind: h.kind,
      rank: h.rank,
      alpha: h.alpha ?? 2 * h.rank,
      width: h.width,
      hiddenSize: session.hiddenSize,
      vocabSize: session.vocabSize,
    }),
    cfg.seed,
  );
  head.fitWhitening(whiteningStates);
  if (cfg.adapter.kind === 'head') return head;
  // adapter.kind lora: LoRA inside the network; the head keeps only its log-flow part
  const a = cfg.adapter;
  return LoraPolicyAdapter.create(
    dir,
    session,
    { rank: a.rank, alpha: a.alpha, targets: a.targets, trainFlow: a.trainFlow, seed: cfg.seed, threads: cfg.train.threads },
    head,
  );
}

/**
 * What every fine-tuning method shares: the parts above, Adam/AdamW over the adapter's policy
 * variables (plus any groups the method adds), the step count and the learning-rate
 * schedule, and checkpoints of all of it (adapter, optimizer moments, RNG, step).
 * LmTrainer adds an objective; the baselines (SFT, REINFORCE) use it as it is.
 */
export class FineTuneSetup {
  step = 0;
  readonly cfg: TrainConfig;
  readonly session: LmSession;
  readonly tok: Tokenizer;
  readonly examples: Example[];
  readonly constraints: ZConstraints;
  readonly rng: Rng;
  readonly adapter: PolicyAdapter;
  readonly optim: TfAdam;

  /** `policyLr`: the policy variables' rate when the method sets its own (else the adapter's, adapterLearningRate) */
  constructor(p: FineTuneParts, extraGroups: ParamGroup[] = [], policyLr: number | null = null) {
    ({
      cfg: this.cfg,
      session: this.session,
      tok: this.tok,
      examples: this.examples,
      constraints: this.constraints,
      rng: this.rng,
      adapter: this.adapter,
    } = p);
    const groups = [{ vars: p.adapter.policyVariables(), lr: policyLr ?? adapterLearningRate(p.cfg) }, ...extraGroups];
    this.optim = new TfAdam(groups, { weightDecay: p.cfg.optim.weightDecay, decoupled: p.cfg.optim.optimizer === 'adamw' });
  }

  static async create(cfg: TrainConfig): Promise<FineTuneSetup> {
    return new FineTuneSetup(await prepareFineTune(cfg));
  }

  /**
   * Frees the adapter (with its sessions and frozen weights) and the frozen LM's session; the
   * setup is unusable afterwards. One process that trains many methods in turn (compare) needs
   * it: a LoRA setup holds a tensor copy of the whole model.
   */
  async release(): Promise<void> {
    await this.adapter.release();
    await this.session.release();
  }

  /** The session the policy samples from: the frozen LM with the adapter's hook, or the adapter's own (LoRA). */
  get samplingSession(): LmSession {
    return this.adapter.samplingSession?.() ?? this.session;
  }

  /**
   * Z sampled on-policy (T = 1) for each example, scored by the frozen base LM without prefix
   * rewards: the batch of the policy-gradient baselines (REINFORCE, PPO).
   */
  async sampleOnPolicy(exs: Example[]): Promise<ScoredRow[]> {
    const x = exs.map((e) => e.xIds);
    const zs = await sampleZ(this.samplingSession, this.tok, x, {
      constraints: this.constraints,
      temperature: 1,
      policy: this.adapter.policy(),
      rng: this.rng,
    });
    return scoreRows(
      this.session,
      x,
      zs,
      exs.map((e) => e.yIds),
      this.constraints,
      this.rewardSpec(),
      { prefix: false },
    );
  }

  /**
   * Ends a step of a method that trains by gradient on sampled or gold rows: a non-finite loss
   * or gradient is a DivergedError (the training loop saves the last good state), else the
   * step counter advances and the step's metrics are returned.
   */
  finishStep(method: string, loss: number, gradNorm: number, rows: ScoredRow[], started: number): StepMetrics {
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm))
      throw new DivergedError(`${method} diverged at step ${this.step + 1} (loss ${loss}, gradient norm ${gradNorm})`);
    this.step++;
    return {
      step: this.step,
      loss,
      meanLogR: rows.reduce((s, r) => s + r.logR, 0) / rows.length,
      logZ: NaN,
      gradNorm,
      rewardTemperature: this.rewardSpec().temperature,
      samples: rows.length,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** The reward at the current step (the reward temperature is scheduled). */
  rewardSpec(): RewardSpec {
    return rewardSpecAt(this.cfg, this.step);
  }

  /** The learning-rate factor of the current step: linear warm-up, then cosine decay. */
  lrScale(): number {
    const o = this.cfg.optim;
    return lrScaleAt(this.step, this.cfg.train.steps, o.warmup, o.finalLrFraction);
  }

  /** Writes adapter, optimizer moments, RNG and step, plus `extra` (state.json keys, files). */
  saveCheckpoint(runDir: string, extra: { state?: object; write?: (dir: string) => void } = {}): string {
    return saveCheckpoint(runDir, this.step, (dir) => {
      this.adapter.save(join(dir, 'head'), { id: this.cfg.model, sha256: this.session.modelHash });
      writeFileSync(join(dir, 'optimizer.json'), JSON.stringify(this.optim.getState()));
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ step: this.step, rng: this.rng.state(), ...extra.state }));
      extra.write?.(dir);
    });
  }

  /** Restores a checkpoint (by default the newest intact one of a run folder); returns it and its state.json for the caller's extras. */
  restoreCheckpoint(runDir: string, ck: Checkpoint = loadLatestCheckpoint(runDir)): { ck: Checkpoint; state: Record<string, unknown> } {
    this.adapter.restore(join(ck.dir, 'head'), { sha256: this.session.modelHash, vocabSize: this.session.vocabSize });
    this.optim.setState(JSON.parse(readFileSync(join(ck.dir, 'optimizer.json'), 'utf8')));
    const state = JSON.parse(readFileSync(join(ck.dir, 'state.json'), 'utf8'));
    this.step = state.step;
    this.rng.setState(state.rng);
    return { ck, state };
  }
}

function rewardSpecAt(cfg: TrainConfig, step: number): RewardSpec {
  return { prior: cfg.reward.prior, likelihoodWeight: cfg.reward.likelihoodWeight, temperature: scheduleAt(cfg.reward.temperature, step) };
}

/** The frozen LM and its tokenizer for a config (backend selected, ORT threads from train.threads). */
export async function openModel(cfg: TrainConfig): Promise<{ dir: string; session: LmSession; tok: Tokenizer }> {
  await selectBackend();
  const dir = await resolveModelDir(cfg.model);
  const session = await LmSession.open(dir, { threads: cfg.train.threads, dtype: cfg.dtype });
  const tok = await loadHfTokenizer(dir, session.facts.eosTokenId, session.vocabSize, {
    bos: cfg.tokenizer.bos,
    configBosId: session.facts.bosTokenId,
  });
  return { dir, session, tok };
}

export function zConstraints(cfg: TrainConfig, tok: Tokenizer): ZConstraints {
  const oneToken = (key: string, s: string) => {
    const ids = tok.encode(s);
    if (ids.length !== 1) {
      // byte-level BPE keeps the leading space in the token (" 7", " ="): suggest the form this tokenizer has
      const alt = s.startsWith(' ') ? s.slice(1) : ` ${s}`;
      const hint = alt.length > 0 && tok.encode(alt).length === 1 ? ` (this tokenizer has "${alt}" as one token)` : '';
      throw new UsageError(`${key}: "${s}" is ${ids.length} tokens of this model's tokenizer, not one${hint}`);
    }
    return ids[0];
  };
  const stopId = cfg.z.stop === null ? tok.eosTokenId : oneToken('z.stop', cfg.z.stop);
  let allowedIds: number[] | null = cfg.z.allowed ? cfg.z.allowed.map((s) => oneToken('z.allowed', s)) : null;
  // Z never holds EOS (with a stop token other than EOS), special tokens, or the ids of a
  // vocab_size padded beyond the tokenizer (Qwen): the whole vocabulary means the rest
  if (!allowedIds) {
    const ok = samplableIds(tok, tok.vocabSize).filter((i) => i !== tok.eosTokenId && i !== stopId);
    if (stopId !== tok.eosTokenId || ok.length < tok.vocabSize - 1) allowedIds = ok;
  }
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

/** The adapter's learning rate: adapter.lr for LoRA when given, else optim.lr. */
export function adapterLearningRate(cfg: TrainConfig): number {
  return cfg.adapter.kind === 'lora' && cfg.adapter.lr !== null ? cfg.adapter.lr : cfg.optim.lr;
}
