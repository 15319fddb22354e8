import type { Env } from '../gfn/env.js';
import { GfnTrainer, type StepResult } from '../gfn/gfn-trainer.js';
import { SoftDqnTrainer } from '../softrl/dqn.js';
import { outputLayout, policySpec } from '../gfn/policy-net.js';
import { softValue } from '../softrl/targets.js';
import { createNet, type Engine } from '../nn/factory.js';
import type { SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { checkMemory } from '../core/memory.js';
import { usage } from '../core/errors.js';
import { FactoredHeadMlp, innerSpec } from '../nn/factored-head.js';
import { SlotFillingEnv } from '../envs/slot-filling.js';
import { isSlotActionEnv, slotLayout, TwoStagePolicy, twoStageSpecs, type PolicyNet } from '../gfn/two-stage.js';

/** Trainer hyperparameters shared by every MLP benchmark (hypergrid, bit sequences, molecules). */
export const ALGOS = ['tb', 'db', 'subtb', 'softdqn', 'mdqn'] as const;
export type Algo = (typeof ALGOS)[number];

export const HEADS = ['dense', 'factored', 'two-stage'] as const;
export type HeadKind = (typeof HEADS)[number];

export interface TrainerOptions {
  algo: Algo;
  iterations: number;
  batch: number;
  seed: number;
  engine: Engine;
  hidden: number[];
  lr: number;
  logZLr: number;
  subtbLambda: number;
  epsilon: number;
  replayBatch: number;
  bufferSize: number;
  perAlpha: number;
  perBeta: [number, number];
  munchausenAlpha: number;
  polyak: number;
  l0: number;
  learningStarts: number;
  /** TB/DB/SubTB: learn P_B with a head on the shared torso (the reference's `tied`) instead of uniform P_B. */
  learnedPB?: boolean;
  /**
   * Output head of slot-filling envs (bit sequences): `dense` has one unit per (slot, word);
   * `factored` emits a position logit and a rank-`headRank` query per slot, scored against
   * learned word embeddings (src/nn/factored-head.ts), so the last layer no longer grows as 2^k;
   * `two-stage` samples the slot, then the word of that slot only (src/gfn/two-stage.ts), so
   * nothing per step grows as L·2^k — TB/DB/SubTB only.
   */
  head?: HeadKind;
  headRank?: number;
}

/**
 * docs/design.md §5 reference hyperparameters (MLP 2×256, Adam 1e-3, TB log Z lr 0.1, 16
 * trajectories per iteration, SubTB λ 0.9, PER 1e5 × 256 with α 0.5 and β 0 → 1, Polyak 0.25,
 * M-DQN α 0.15, l0 −100, updates from iteration 16); each benchmark overrides what it must.
 */
export const REFERENCE_TRAINER_DEFAULTS: Omit<TrainerOptions, 'algo'> = {
  iterations: 2000,
  batch: 16,
  seed: 0,
  engine: 'fused',
  hidden: [256, 256],
  lr: 1e-3,
  logZLr: 0.1,
  subtbLambda: 0.9,
  epsilon: 0,
  replayBatch: 256,
  bufferSize: 100_000,
  perAlpha: 0.5,
  perBeta: [0, 1],
  munchausenAlpha: 0.15,
  polyak: 0.25,
  l0: -100,
  learningStarts: 16,
};

/** Progress of a long benchmark: iterations done, and the phases outside the training loop. */
export interface BenchProgress {
  onIteration?(done: number): void;
  onPhase?(what: string): void;
  /** Objects evaluated so far by the final density estimate. */
  onEval?(done: number, total: number): void;
}

export interface BuiltTrainer {
  step(): StepResult;
  net: PolicyNet;
  /** Temperature of the sampling policy softmax(logits/T): τ = 1/(1−α) for M-DQN, 1 otherwise. */
  temperature: number;
  /**
   * The objective's estimate of log Z: TB's log Z_θ, log F(s0) for DB/SubTB, and the soft
   * value τ·LSE(Q(s0, ·)/τ) = V*(s0) for SoftDQN/M-DQN (eq. (M)).
   */
  logZ(): number;
  dispose(): void;
}

/**
 * A lower bound on the bytes one iteration's rollout of B trajectories holds at once: the
 * arrays gfn/rollout.ts and gfn/trajectories.ts allocate for every one of the B × maxSteps
 * slots (actions and row index, the state, the network's outputs, both action masks,
 * per-edge log-probabilities and flows and their gradients), plus one activation-tape row
 * per trajectory (the tape grows with the states actually visited, so only B rows are sure).
 */
export function rolloutBytes(env: Env, B: number, hidden: number[], head: HeadKind = 'dense'): number {
  if (head === 'two-stage' && isSlotActionEnv(env)) {
    // sampleTwoStage's arrays of B × maxSteps rows: action and two tape-row indices, slot-net
    // outputs, slot and backward masks, a word row (2^k f32 logits, f64 probabilities, a flag),
    // plus the trajectory batch and its gradients (48 bytes)
    const S = slotLayout(env);
    const perSlot = 12 + 4 * S.width + S.stage1 + env.nBackActions + 12 * env.values + 1 + 48;
    return B * env.maxSteps * perSlot + 2 * B * 4 * hidden.reduce((s, h) => s + h, 0);
  }
  const W = outputLayout(env).width;
  const perSlot = 8 + 4 * env.stateDim + 4 * W + env.nActions + env.nBackActions + 48;
  return B * env.maxSteps * perSlot + B * 4 * hidden.reduce((s, h) => s + h, 0);
}

/**
 * The engine's trainers (GfnTrainer for TB/DB/SubTB, SoftDqnTrainer for SoftDQN/M-DQN) on
 * any env; soft-RL objectives use the fixed uniform P_B of eq. (M).
 */
/** The policy network for env: the engine's MLP, wrapped in a factored slot × word head when asked. */
async function makeNet(env: Env, o: TrainerOptions, seed: number): Promise<SparseMlp> {
  const spec = policySpec(env, o.hidden);
  if ((o.head ?? 'dense') === 'dense') return createNet(o.engine, spec, seed);
  usage(env instanceof SlotFillingEnv, `--head factored needs a slot-filling env (bit sequences), not ${env.name}`);
  // SlotFillingEnv.encode: slot j of a row is index j·(W + 1) + value + 1, so open ⇔ j·(W + 1)
  const L = env.slots,
    W1 = env.values + 1;
  const slotOpen = (idx: Int32Array, i: number, j: number) => idx[i * L + j] === j * W1;
  const shape = { slots: env.slots, words: env.values, rank: o.headRank ?? 8, slotOpen };
  usage(Number.isInteger(shape.rank) && shape.rank >= 1, `head rank must be an integer ≥ 1 (got ${shape.rank})`);
  return new FactoredHeadMlp(spec, await createNet(o.engine, innerSpec(spec, shape), seed), shape, seed);
}

/** The two-stage (slot, then word) policy: two engine MLPs, see src/gfn/two-stage.ts. */
async function makeTwoStage(env: Env, o: TrainerOptions, seed: number): Promise<TwoStagePolicy> {
  usage(isSlotActionEnv(env), `--head two-stage needs a slot-filling env (bit sequences), not ${env.name}`);
  const specs = twoStageSpecs(env, o.hidden);
  return new TwoStagePolicy(env, await createNet(o.engine, specs.slot, seed), await createNet(o.engine, specs.word, seed + 500_009));
}

export async function buildTrainer(env: Env, o: TrainerOptions, rng: Rng): Promise<BuiltTrainer> {
  checkMemory(
    `--batch ${o.batch} (trajectories of up to ${env.maxSteps} states, network ${o.hidden.join('×')})`,
    rolloutBytes(env, o.batch, o.hidden, o.head),
  );
  const explore = { epsilon: o.epsilon, temperature: 1 };
  if (o.algo === 'softdqn' || o.algo === 'mdqn') {
    // Soft-RL bootstraps V(s') = τ·LSE over every joint action of s', i.e. every open slot's
    // words: the two-stage policy would have to evaluate its word net L times per state.
    usage(
      o.head !== 'two-stage',
      `--head two-stage supports tb, db and subtb (${o.algo} needs Q over every joint action: use dense or factored)`,
    );
    const net = await makeNet(env, o, o.seed);
    const alpha = o.algo === 'mdqn' ? o.munchausenAlpha : 0;
    const target = await makeNet(env, o, o.seed + 1);
    const t = new SoftDqnTrainer(env, net, target, rng, {
      alpha,
      l0: o.l0,
      batchSize: o.batch,
      replayBatch: o.replayBatch,
      bufferSize: o.bufferSize,
      perAlpha: o.perAlpha,
      perBeta: o.perBeta,
      iterations: o.iterations,
      polyak: o.polyak,
      lr: o.lr,
      huber: true,
      importanceWeights: false,
      learningStarts: o.learningStarts,
      explore,
    });
    const tau = t.tau;
    const logZ = () => {
      const q = forwardS0(env, net).subarray(0, env.nActions);
      const mask = new Uint8Array(env.nActions);
      env.forwardMask(env.initialStates(1), 1, mask);
      return softValue(q, 0, mask, 0, env.nActions, tau);
    };
    return { step: () => t.step(), net, temperature: tau, logZ, dispose: () => (net.dispose(), target.dispose()) };
  }
  const net: PolicyNet = o.head === 'two-stage' ? await makeTwoStage(env, o, o.seed) : await makeNet(env, o, o.seed);
  const t = new GfnTrainer(env, net, rng, {
    objective: o.algo,
    batchSize: o.batch,
    lr: o.lr,
    logZLr: o.logZLr,
    subtbLambda: o.subtbLambda,
    learnedPB: o.learnedPB ?? false,
    explore,
  });
  const logZ = () => {
    if (o.algo === 'tb') return t.logZ[0];
    if (net instanceof TwoStagePolicy) return forwardS0(env, net.slotNet)[net.layout.flow];
    return forwardS0(env, net)[outputLayout(env).flow];
  };
  return { step: () => t.step(), net, temperature: 1, logZ, dispose: () => net.dispose() };
}

function forwardS0(env: Env, net: SparseMlp): Float32Array {
  const idx = new Int32Array(env.nnz);
  env.encode(env.initialStates(1), 1, idx);
  const out = new Float32Array(net.spec.outputDim);
  net.forward(idx, 1, out, false);
  return out;
}
