import type { EnumerableEnv } from './env.js';
import type { ExactDag } from './exact.js';
import { outputLayout } from './policy-net.js';
import { maskedLogSoftmax } from '../core/math.js';
import { isTwoStage, twoStageFullLogPF, type PolicyNet } from './two-stage.js';

/**
 * The network's forward policy on every state of the DAG, as log P_F [N × A] with
 * −Infinity on masked actions: softmax(logits/temperature) (temperature τ for M-DQN,
 * whose policy is softmax(Q/τ)). Evaluated in chunks, off the tape. A two-stage policy gives
 * log P(slot) + log P(word | slot), each stage at the temperature.
 */
export function policyOnDag(env: EnumerableEnv, net: PolicyNet, dag: ExactDag, temperature = 1, chunk = 1024): Float64Array {
  if (isTwoStage(net)) return twoStageOnDag(net, dag, temperature, chunk);
  const N = dag.numStates,
    A = dag.nActions,
    D = env.stateDim,
    K = env.nnz;
  const { width: W } = outputLayout(env);
  const logPF = new Float64Array(N * A);
  const idx = new Int32Array(chunk * K);
  const out = new Float32Array(chunk * W);
  const scaled = new Float64Array(A);
  const row = new Float64Array(A);
  for (let s0 = 0; s0 < N; s0 += chunk) {
    const n = Math.min(chunk, N - s0);
    env.encode(dag.states.subarray(s0 * D, (s0 + n) * D), n, idx);
    net.forward(idx, n, out, false);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < A; a++) scaled[a] = out[i * W + a] / temperature;
      maskedLogSoftmax(scaled, 0, A, dag.mask, (s0 + i) * A, row);
      logPF.set(row, (s0 + i) * A);
    }
  }
  return logPF;
}

function twoStageOnDag(policy: Parameters<typeof twoStageFullLogPF>[0], dag: ExactDag, temperature: number, chunk: number): Float64Array {
  const N = dag.numStates,
    A = dag.nActions,
    D = policy.env.stateDim;
  const logPF = new Float64Array(N * A);
  for (let s0 = 0; s0 < N; s0 += chunk) {
    const n = Math.min(chunk, N - s0);
    twoStageFullLogPF(policy, dag.states.subarray(s0 * D, (s0 + n) * D), n, logPF.subarray(s0 * A, (s0 + n) * A), temperature);
  }
  // the two-stage policy reads the env's slot mask, the oracle its forward mask: they must agree
  for (let i = 0; i < N * A; i++) {
    if (logPF[i] > -Infinity !== (dag.mask[i] === 1))
      throw new Error(`two-stage policy: slot mask and forward mask disagree at state ${Math.floor(i / A)}`);
  }
  return logPF;
}

/**
 * Empirical distribution of the last `window` visited terminal states (a ring of state
 * indices plus counts), and its mean absolute error against a target over all states —
 * the "L1" of the hypergrid literature (mean, not sum, over states).
 */
export class EmpiricalTracker {
  private readonly ring: Int32Array;
  private readonly counts: Float64Array;
  private pos = 0;
  private filled = 0;

  constructor(
    numStates: number,
    readonly window = 200_000,
  ) {
    this.ring = new Int32Array(window);
    this.counts = new Float64Array(numStates);
  }

  add(stateIndex: number): void {
    if (this.filled === this.window) this.counts[this.ring[this.pos]]--;
    else this.filled++;
    this.ring[this.pos] = stateIndex;
    this.counts[stateIndex]++;
    this.pos = (this.pos + 1) % this.window;
  }

  get size(): number {
    return this.filled;
  }

  meanAbsError(target: Float64Array): number {
    if (this.filled === 0) return NaN;
    let s = 0;
    for (let i = 0; i < target.length; i++) s += Math.abs(this.counts[i] / this.filled - target[i]);
    return s / target.length;
  }
}
