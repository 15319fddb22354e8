/**
 * Two-stage (slot, then value) forward policy for envs whose actions are (slot, value) pairs —
 * the bit-sequence benchmark's L·2^k joint actions (docs/design.md §5). Instead of one
 * softmax over every joint action,
 *   log P_F(j, v | s) = log softmax(slot logits(s))_j + log softmax(word logits(s, j))_v,
 * and the word logits are computed for the chosen slot only, so neither the network nor the
 * sampler nor the loss ever touches all L·2^k joint actions. Exit is one more slot-stage
 * choice (column L) with no word stage.
 *
 * Two MLPs (both any SparseMlp engine, so the fused wasm kernel runs both):
 *  - the slot net reads the state and emits [L slot logits][exit][Ab backward logits][log F];
 *  - the word net reads the state plus a one-hot of the chosen slot (input index
 *    env.inputDim + j, a learned per-slot vector added to its first layer) and emits 2^k
 *    word logits. Its cost per row is hidden × 2^k, against hidden × L·2^k for a dense head.
 * Any joint distribution over (slot, value) factors this way, so the family is as expressive as
 * the dense head's.
 */
import type { Env } from './env.js';
import type { MlpSpec, SparseMlp } from '../nn/mlp.js';
import type { Rng } from '../core/rng.js';
import { logSoftmaxAt } from '../core/math.js';
import { emptyBatch, type LossResult, type TrajectoryBatch } from './trajectories.js';
import type { ExploreOptions } from './rollout.js';

/**
 * An env whose forward action j·values + v puts value v into slot j (exit = slots·values,
 * the last action), and where every value is allowed in an open slot — so the forward mask
 * is the slot mask repeated, and the two-stage policy never needs the L·values-wide mask.
 */
export interface SlotActionEnv extends Env {
  readonly slots: number;
  readonly values: number;
  /** out[i·(slots + 1) + j] = 1 when slot j of state i is open; column `slots` is 1 when exit is allowed. */
  slotMask(states: Int32Array, n: number, out: Uint8Array): void;
}

export function isSlotActionEnv(env: Env): env is SlotActionEnv {
  const e = env as Partial<SlotActionEnv>;
  return (
    typeof e.slots === 'number' &&
    typeof e.values === 'number' &&
    typeof e.slotMask === 'function' &&
    env.nActions === e.slots * e.values + 1
  );
}

/** Column layout of the slot net's output row. */
export interface SlotLayout {
  slots: number; // L: slot logits [0, L)
  exit: number; // = L
  stage1: number; // L + 1 choices in the slot stage (slots and exit)
  back: number; // first backward logit (Ab of them)
  nBack: number;
  flow: number; // log F
  width: number;
}

export function slotLayout(env: SlotActionEnv): SlotLayout {
  const L = env.slots,
    Ab = env.nBackActions;
  return { slots: L, exit: L, stage1: L + 1, back: L + 1, nBack: Ab, flow: L + 1 + Ab, width: L + Ab + 2 };
}

/** The two networks' specs for `hidden` (both nets get the same hidden sizes). */
export function twoStageSpecs(env: SlotActionEnv, hidden: number[]): { slot: MlpSpec; word: MlpSpec } {
  return {
    slot: { inputDim: env.inputDim, nnz: env.nnz, hidden, outputDim: slotLayout(env).width },
    word: { inputDim: env.inputDim + env.slots, nnz: env.nnz + 1, hidden, outputDim: env.values },
  };
}

export class TwoStagePolicy {
  readonly layout: SlotLayout;

  constructor(
    readonly env: SlotActionEnv,
    readonly slotNet: SparseMlp,
    readonly wordNet: SparseMlp,
  ) {
    this.layout = slotLayout(env);
    const want = twoStageSpecs(env, slotNet.spec.hidden);
    const same = (a: MlpSpec, b: MlpSpec) => a.inputDim === b.inputDim && a.nnz === b.nnz && a.outputDim === b.outputDim;
    if (!same(slotNet.spec, want.slot) || !same(wordNet.spec, { ...want.word, hidden: wordNet.spec.hidden })) {
      throw new Error('two-stage policy: network specs do not match the env (use twoStageSpecs)');
    }
  }

  get numParams(): number {
    return this.slotNet.numParams + this.wordNet.numParams;
  }

  /** Word-net inputs of n rows: row r is the state encoding idx[r] plus the one-hot of slot[r]. */
  wordInputs(idx: Int32Array, stateRow: Int32Array, slot: Int32Array, n: number, out: Int32Array): void {
    const K = this.env.nnz,
      K1 = K + 1,
      base = this.env.inputDim;
    for (let r = 0; r < n; r++) {
      out.set(idx.subarray(stateRow[r] * K, stateRow[r] * K + K), r * K1);
      out[r * K1 + K] = base + slot[r];
    }
  }

  resetTape(): void {
    this.slotNet.resetTape();
    this.wordNet.resetTape();
  }

  zeroGrad(): void {
    this.slotNet.zeroGrad();
    this.wordNet.zeroGrad();
  }

  adamStep(lr: number): void {
    this.slotNet.adamStep(lr);
    this.wordNet.adamStep(lr);
  }

  dispose(): void {
    this.slotNet.dispose();
    this.wordNet.dispose();
  }
}

/** A benchmark policy: one network over all joint actions, or the two-stage pair. */
export type PolicyNet = SparseMlp | TwoStagePolicy;

export function isTwoStage(p: PolicyNet): p is TwoStagePolicy {
  return p instanceof TwoStagePolicy;
}

/** Like gfn/rollout.ts's Rollout, with one tape per stage. */
export interface TwoStageRollout {
  batch: TrajectoryBatch;
  actions: Int32Array; // [B × T] joint actions
  slotRows: Int32Array; // [B × T]: slot-net tape row of node t
  wordRows: Int32Array; // [B × T]: word-net tape row of edge t (−1 on the exit edge)
  slotOut: Float32Array; // [numSlotRows × layout.width]
  wordOut: Float32Array; // [numWordRows × values]
  /** [numWordRows × values]: softmax of the word row when the sampler already computed it (τ = 1), for the gradient. */
  wordProb: Float64Array;
  wordProbReady: Uint8Array; // [numWordRows]
  smask: Uint8Array; // [numSlotRows × (L + 1)]
  bmask: Uint8Array; // [numSlotRows × Ab]
  numSlotRows: number;
  numWordRows: number;
  terminals: Int32Array; // [B × D]
}

/** m = max x/τ and s = Σ exp(x/τ − m) over x[off .. off+n), with exp(x/τ − m) written to p[0..n). */
function expRow(x: Float32Array, off: number, n: number, tau: number, p: Float64Array): { m: number; s: number } {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] / tau > m) m = x[off + i] / tau;
  let s = 0;
  for (let i = 0; i < n; i++) s += p[i] = Math.exp(x[off + i] / tau - m);
  return { m, s };
}

/**
 * B trajectories in lockstep, as sampleTrajectories, with the two stages: one batched slot-net
 * forward per step, then one batched word-net forward over the rows that chose a slot (not exit).
 * Stored log P_F is the joint log P(slot) + log P(word | slot) of the taken action, at
 * temperature 1 whatever `explore.temperature` (which, like ε, only changes the sampler).
 * ε-exploration is uniform over the allowed joint actions: slot j with weight `values`
 * (each of its words once), exit with weight 1, then the word uniformly.
 */
export function sampleTwoStage(
  policy: TwoStagePolicy,
  B: number,
  rng: Rng,
  explore: ExploreOptions,
  opts: { record: boolean; learnedPB: boolean },
): TwoStageRollout {
  const { env, layout } = policy;
  const T = env.maxSteps,
    D = env.stateDim,
    V = env.values,
    S1 = layout.stage1,
    Ab = env.nBackActions,
    W = layout.width,
    K = env.nnz;
  const tau = explore.temperature;
  const batch = emptyBatch(B, T);
  const maxRows = B * T;
  const actions = new Int32Array(B * T).fill(-1);
  const slotRows = new Int32Array(B * T).fill(-1);
  const wordRows = new Int32Array(B * T).fill(-1);
  const slotOut = new Float32Array(maxRows * W);
  const wordOut = new Float32Array(maxRows * V);
  const wordProb = new Float64Array(maxRows * V);
  const wordProbReady = new Uint8Array(maxRows);
  const smask = new Uint8Array(maxRows * S1);
  const bmask = new Uint8Array(maxRows * Ab);
  const terminals = new Int32Array(B * D);

  let active = Int32Array.from({ length: B }, (_, i) => i);
  const cur = env.initialStates(B);
  const idx = new Int32Array(B * K);
  const widx = new Int32Array(B * (K + 1));
  const stepOut = new Float32Array(B * W);
  const wStepOut = new Float32Array(B * V);
  const probs = new Float64Array(Math.max(S1, V));
  const choice = new Int32Array(B); // slot-stage choice per active row
  const word = new Int32Array(B); // word per active row (−1: sample from the word net)
  const lpSlot = new Float64Array(B);
  const wRow = new Int32Array(B); // active-row index of word-net row r
  const wSlot = new Int32Array(B);
  const moveActions = new Int32Array(B);
  let numRows = 0,
    numWordRows = 0;
  if (opts.record) policy.resetTape();

  for (let k = 0; k < T && active.length > 0; k++) {
    const n = active.length;
    env.encode(cur, n, idx);
    env.slotMask(cur, n, smask.subarray(numRows * S1));
    env.backwardMask(cur, n, bmask.subarray(numRows * Ab));
    const row0 = policy.slotNet.forward(idx, n, stepOut, opts.record);
    if (opts.record && row0 !== numRows) throw new Error('slot-net tape out of sync with the rollout');
    slotOut.set(stepOut.subarray(0, n * W), numRows * W);

    // slot stage
    let m = 0;
    for (let i = 0; i < n; i++) {
      const r = numRows + i,
        mo = r * S1;
      lpSlot[i] = NaN;
      word[i] = -1;
      if (explore.epsilon > 0 && rng.uniform() < explore.epsilon) {
        for (let j = 0; j < S1; j++) probs[j] = smask[mo + j] ? (j === layout.exit ? 1 : V) : 0;
        choice[i] = rng.categorical(probs, 0, S1);
        if (choice[i] !== layout.exit) word[i] = rng.int(V);
      } else {
        let mx = -Infinity;
        for (let j = 0; j < S1; j++) if (smask[mo + j] && stepOut[i * W + j] / tau > mx) mx = stepOut[i * W + j] / tau;
        for (let j = 0; j < S1; j++) probs[j] = smask[mo + j] ? Math.exp(stepOut[i * W + j] / tau - mx) : 0;
        choice[i] = rng.categorical(probs, 0, S1);
      }
      lpSlot[i] = logSoftmaxAt(stepOut, i * W, S1, choice[i], smask, mo);
      if (choice[i] !== layout.exit) (wRow[m] = i), (wSlot[m] = choice[i]), m++;
    }

    // word stage, for the rows that chose a slot
    if (m > 0) {
      policy.wordInputs(idx, wRow, wSlot, m, widx);
      const w0 = policy.wordNet.forward(widx, m, wStepOut, opts.record);
      if (opts.record && w0 !== numWordRows) throw new Error('word-net tape out of sync with the rollout');
      wordOut.set(wStepOut.subarray(0, m * V), numWordRows * V);
    }
    let nMoves = 0;
    const stillActive: number[] = [];
    let wr = 0;
    for (let i = 0; i < n; i++) {
      const b = active[i],
        e = b * T + k;
      let a: number,
        lp = lpSlot[i];
      if (choice[i] === layout.exit) a = env.exitAction;
      else {
        let w = word[i];
        const row = numWordRows + wr;
        if (w < 0) {
          const { m: mw, s: sw } = expRow(wStepOut, wr * V, V, tau, probs);
          w = rng.categorical(probs, 0, V);
          if (tau === 1) {
            // the sampling softmax is the policy's: reuse it for log P_F and for the gradient
            for (let v = 0; v < V; v++) wordProb[row * V + v] = probs[v] / sw;
            wordProbReady[row] = 1;
            lp += wStepOut[wr * V + w] - mw - Math.log(sw);
          } else lp += logSoftmaxAt(wStepOut, wr * V, V, w);
        } else lp += logSoftmaxAt(wStepOut, wr * V, V, w);
        a = choice[i] * V + w;
        wordRows[e] = row;
        wr++;
      }
      batch.logPF[e] = lp;
      batch.logF[b * (T + 1) + k] = stepOut[i * W + layout.flow];
      actions[e] = a;
      slotRows[e] = numRows + i;
      if (a === env.exitAction) {
        batch.lengths[b] = k + 1;
        terminals.set(cur.subarray(i * D, i * D + D), b * D);
      } else {
        cur.copyWithin(nMoves * D, i * D, i * D + D);
        moveActions[nMoves++] = a;
        stillActive.push(b);
      }
    }
    numRows += n;
    numWordRows += m;
    env.step(cur, moveActions, nMoves, cur);
    active = Int32Array.from(stillActive);
  }
  if (active.length > 0) throw new Error(`trajectories did not exit within env.maxSteps = ${T}`);

  env.logReward(terminals, B, batch.logR);
  for (let b = 0; b < B; b++) {
    const n = batch.lengths[b];
    batch.logF[b * (T + 1) + n] = batch.logR[b];
    // edge t−1 enters node t (t = 1..n−1); the exit edge has log P_B = 0
    for (let t = 1; t < n; t++) {
      const r = slotRows[b * T + t];
      const ba = env.backwardActionOf(actions[b * T + t - 1]);
      let filled = 0;
      for (let j = 0; j < Ab; j++) filled += bmask[r * Ab + j];
      batch.logPB[b * T + t - 1] = opts.learnedPB ? logSoftmaxAt(slotOut, r * W + layout.back, Ab, ba, bmask, r * Ab) : -Math.log(filled);
    }
  }
  return {
    batch,
    actions,
    slotRows,
    wordRows,
    slotOut,
    wordOut,
    wordProb,
    wordProbReady,
    smask,
    bmask,
    numSlotRows: numRows,
    numWordRows,
    terminals,
  };
}

/**
 * dL/d(outputs) of both nets from a loss's gradient: softmax backward over the slot stage
 * (and the word stage on the taken slot's word row), identity on log F, softmax backward on the
 * learned backward logits — the two-stage counterpart of outputGradients.
 */
export function twoStageGradients(
  policy: TwoStagePolicy,
  ro: TwoStageRollout,
  g: LossResult,
  opts: { learnedPB: boolean; useFlow: boolean },
): { dSlot: Float32Array; dWord: Float32Array } {
  const { env, layout } = policy;
  const { batch, slotRows, wordRows, actions, slotOut, wordOut, smask, bmask } = ro;
  const V = env.values,
    S1 = layout.stage1,
    Ab = layout.nBack,
    W = layout.width;
  const T = batch.maxLen;
  const dSlot = new Float32Array(ro.numSlotRows * W);
  const dWord = new Float32Array(ro.numWordRows * V);
  const p = new Float64Array(Math.max(S1, V, Ab));
  for (let b = 0; b < batch.size; b++) {
    const n = batch.lengths[b];
    for (let t = 0; t < n; t++) {
      const e = b * T + t,
        r = slotRows[e],
        a = actions[e],
        gpf = g.dLogPF[e];
      // d log softmax(l)_c / d l_j = [j = c] − softmax(l)_j, over the allowed slot-stage choices
      const c = a === env.exitAction ? layout.exit : Math.floor(a / V);
      let mx = -Infinity;
      for (let j = 0; j < S1; j++) if (smask[r * S1 + j] && slotOut[r * W + j] > mx) mx = slotOut[r * W + j];
      let s = 0;
      for (let j = 0; j < S1; j++) s += p[j] = smask[r * S1 + j] ? Math.exp(slotOut[r * W + j] - mx) : 0;
      for (let j = 0; j < S1; j++) if (p[j] > 0) dSlot[r * W + j] -= (gpf * p[j]) / s;
      dSlot[r * W + c] += gpf;
      const wr = wordRows[e];
      if (wr >= 0) {
        if (ro.wordProbReady[wr]) {
          const q = ro.wordProb;
          for (let w = 0; w < V; w++) dWord[wr * V + w] -= gpf * q[wr * V + w];
        } else {
          const { s: sw } = expRow(wordOut, wr * V, V, 1, p);
          for (let w = 0; w < V; w++) dWord[wr * V + w] -= (gpf * p[w]) / sw;
        }
        dWord[wr * V + (a % V)] += gpf;
      }
      if (opts.useFlow) dSlot[r * W + layout.flow] += g.dLogF[b * (T + 1) + t];
      if (opts.learnedPB && t > 0) {
        const gpb = g.dLogPB[e - 1];
        const base = r * W + layout.back;
        let mb = -Infinity;
        for (let j = 0; j < Ab; j++) if (bmask[r * Ab + j] && slotOut[base + j] > mb) mb = slotOut[base + j];
        let sb = 0;
        for (let j = 0; j < Ab; j++) sb += p[j] = bmask[r * Ab + j] ? Math.exp(slotOut[base + j] - mb) : 0;
        for (let j = 0; j < Ab; j++) if (p[j] > 0) dSlot[base + j] -= (gpb * p[j]) / sb;
        dSlot[base + env.backwardActionOf(actions[e - 1])] += gpb;
      }
    }
  }
  return { dSlot, dWord };
}

/** Backpropagates both stages' output gradients (tapes from a recorded sampleTwoStage) and steps Adam. */
export function twoStageUpdate(
  policy: TwoStagePolicy,
  ro: TwoStageRollout,
  d: { dSlot: Float32Array; dWord: Float32Array },
  lr: number,
): void {
  policy.zeroGrad();
  policy.slotNet.backward(0, ro.numSlotRows, d.dSlot);
  if (ro.numWordRows > 0) policy.wordNet.backward(0, ro.numWordRows, d.dWord);
  policy.adamStep(lr);
}

/** The slot stage of n states off the tape: encoded inputs, slot masks and slot-net outputs [n × width]. */
function slotStageOffTape(policy: TwoStagePolicy, states: Int32Array, n: number): { idx: Int32Array; smask: Uint8Array; so: Float32Array } {
  const { env, layout } = policy;
  const idx = new Int32Array(n * env.nnz);
  env.encode(states, n, idx);
  const smask = new Uint8Array(n * layout.stage1);
  env.slotMask(states, n, smask);
  const so = new Float32Array(n * layout.width);
  policy.slotNet.forward(idx, n, so, false);
  return { idx, smask, so };
}

/**
 * log P_F(actions[i] | states[i]) for n rows, of softmax(logits/τ) at each stage (τ as the
 * evaluators' temperature argument), off the tape: one slot-net forward over the rows, one
 * word-net forward over the non-exit ones.
 */
export function twoStageLogProbs(
  policy: TwoStagePolicy,
  states: Int32Array,
  n: number,
  actions: Int32Array,
  out: Float64Array,
  temperature = 1,
): void {
  const { env, layout } = policy;
  const V = env.values,
    S1 = layout.stage1,
    W = layout.width,
    K = env.nnz;
  const { idx, smask, so } = slotStageOffTape(policy, states, n);
  const rows = new Int32Array(n),
    slots = new Int32Array(n);
  let m = 0;
  for (let i = 0; i < n; i++) {
    const a = actions[i];
    const c = a === env.exitAction ? layout.exit : Math.floor(a / V);
    out[i] = logSoftmaxAt(so, i * W, S1, c, smask, i * S1, temperature);
    if (c !== layout.exit) (rows[m] = i), (slots[m] = c), m++;
  }
  if (m === 0) return;
  const widx = new Int32Array(m * (K + 1));
  policy.wordInputs(idx, rows, slots, m, widx);
  const wo = new Float32Array(m * V);
  policy.wordNet.forward(widx, m, wo, false);
  for (let r = 0; r < m; r++) out[rows[r]] += logSoftmaxAt(wo, r * V, V, actions[rows[r]] % V, null, 0, temperature);
}

/**
 * The full log P_F [n × A] (−∞ on disallowed actions) of n states — every open slot's word
 * row, so n·L word-net rows: for the exact oracles on small envs only.
 */
export function twoStageFullLogPF(policy: TwoStagePolicy, states: Int32Array, n: number, out: Float64Array, temperature = 1): void {
  const { env, layout } = policy;
  const L = env.slots,
    V = env.values,
    A = env.nActions,
    S1 = layout.stage1,
    W = layout.width,
    K = env.nnz;
  const { idx, smask, so } = slotStageOffTape(policy, states, n);
  out.fill(-Infinity, 0, n * A);
  const rows: number[] = [],
    slots: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < L; j++) if (smask[i * S1 + j]) rows.push(i), slots.push(j);
    if (smask[i * S1 + layout.exit]) out[i * A + env.exitAction] = logSoftmaxAt(so, i * W, S1, layout.exit, smask, i * S1, temperature);
  }
  const m = rows.length;
  if (m === 0) return;
  const widx = new Int32Array(m * (K + 1));
  policy.wordInputs(idx, Int32Array.from(rows), Int32Array.from(slots), m, widx);
  const wo = new Float32Array(m * V);
  policy.wordNet.forward(widx, m, wo, false);
  for (let r = 0; r < m; r++) {
    const i = rows[r],
      j = slots[r];
    const ls = logSoftmaxAt(so, i * W, S1, j, smask, i * S1, temperature);
    const { m: mx, s } = maxAndSum(wo, r * V, V, temperature);
    for (let v = 0; v < V; v++) out[i * A + j * V + v] = ls + wo[r * V + v] / temperature - mx - Math.log(s);
  }
}

function maxAndSum(x: Float32Array, off: number, n: number, tau: number): { m: number; s: number } {
  const p = new Float64Array(n);
  return expRow(x, off, n, tau, p);
}
