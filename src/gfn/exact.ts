import type { EnumerableEnv } from './env.js';
import { logSumExp } from '../core/math.js';

/**
 * The whole DAG of a small env, as flat arrays, for exact oracles. Edge e = (state s,
 * action a) for every allowed non-exit action; child[s·A + a] is the child's index (−1
 * where the action is not allowed). logPB[s·A + a] = log P_B(s | child) of the fixed
 * backward policy (uniform over parents unless given).
 */
export interface ExactDag {
  numStates: number;
  nActions: number; // forward actions, exit last
  exitAction: number;
  states: Int32Array;
  mask: Uint8Array; // [N × A]
  child: Int32Array; // [N × A]
  logPB: Float64Array; // [N × A], 0 on the exit action
  logR: Float64Array; // [N]
  numParents: Int32Array; // [N]
}

export function buildDag(env: EnumerableEnv): ExactDag {
  const N = env.numStates(),
    A = env.nActions,
    D = env.stateDim,
    X = env.exitAction;
  const states = env.allStates();
  const mask = new Uint8Array(N * A);
  env.forwardMask(states, N, mask);
  const child = new Int32Array(N * A).fill(-1);
  const one = new Int32Array(1);
  const next = new Int32Array(D);
  for (let s = 0; s < N; s++) {
    for (let a = 0; a < A; a++) {
      if (a === X || !mask[s * A + a]) continue;
      one[0] = a;
      env.step(states.subarray(s * D, (s + 1) * D), one, 1, next);
      const c = env.indexOf(next, 0);
      if (c <= s) throw new Error(`allStates() is not in topological order at state ${s}`);
      child[s * A + a] = c;
    }
  }
  const numParents = new Int32Array(N);
  for (let e = 0; e < N * A; e++) if (child[e] >= 0) numParents[child[e]]++;
  const logPB = new Float64Array(N * A);
  for (let e = 0; e < N * A; e++) if (child[e] >= 0) logPB[e] = -Math.log(numParents[child[e]]);
  const logR = new Float64Array(N);
  env.logReward(states, N, logR);
  return { numStates: N, nActions: A, exitAction: X, states, mask, child, logPB, logR, numParents };
}

/**
 * State flows of the unique flow consistent with R and the fixed P_B (docs/design.md §2,
 * hypergrid oracle): in reverse topological order, F(s) = R(s)·[exit allowed] +
 * Σ_children F(s')·P_B(s|s'). Log space, so large rewards do not overflow.
 * Also returns the optimal forward policy log P_F*(a|s) = log F(s→s') − log F(s).
 */
export function flowOracle(dag: ExactDag): { logF: Float64Array; logPF: Float64Array; logZ: number } {
  const { numStates: N, nActions: A, exitAction: X } = dag;
  const logF = new Float64Array(N);
  const edge = new Float64Array(N * A).fill(-Infinity); // log F(s→s')
  for (let s = N - 1; s >= 0; s--) {
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      if (!dag.mask[e]) continue;
      edge[e] = a === X ? dag.logR[s] : logF[dag.child[e]] + dag.logPB[e];
    }
    logF[s] = logSumExp(edge, s * A, A);
  }
  const logPF = new Float64Array(N * A);
  for (let s = 0; s < N; s++) for (let a = 0; a < A; a++) logPF[s * A + a] = edge[s * A + a] - logF[s];
  return { logF, logPF, logZ: logF[0] };
}

/**
 * Terminal distribution of a forward policy by forward DP (docs/design.md §2):
 * u(s0) = 1, u(s') = Σ u(s)·P_F(s'|s), P_T(x) = u(x)·P_F(exit|x).
 * logPF is [N × A] with −Infinity on masked actions.
 */
export function terminalDistribution(dag: ExactDag, logPF: Float64Array): Float64Array {
  const { numStates: N, nActions: A, exitAction: X } = dag;
  const u = new Float64Array(N);
  const pT = new Float64Array(N);
  u[0] = 1;
  for (let s = 0; s < N; s++) {
    if (u[s] === 0) continue;
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      if (!dag.mask[e]) continue;
      const p = u[s] * Math.exp(logPF[e]);
      if (a === X) pT[s] += p;
      else u[dag.child[e]] += p;
    }
  }
  return pT;
}

/** R(x)/Z over all states. */
export function targetDistribution(dag: ExactDag): Float64Array {
  const logZ = logSumExp(dag.logR);
  return dag.logR.map((l) => Math.exp(l - logZ));
}

export interface SoftValues {
  V: Float64Array; // [N]
  Q: Float64Array; // [N × A], −Infinity on masked actions
  sweeps: number;
}

/**
 * Soft value iteration (entropy coefficient 1, γ = 1) on the MDP of docs/design.md eq. (M):
 * r(s,s') = log P_B(s|s'), r(x, s_f) = log R(x). Synchronous Bellman sweeps
 * Q(s,a) = r + V(s'), V(s) = logsumexp_a Q(s,a) from V ≡ 0 until nothing changes; on a DAG
 * this is exact after (depth + 1) sweeps. Independent of flowOracle on purpose: the
 * theorem check compares the two.
 */
export function softValueIteration(dag: ExactDag, tol = 0, maxSweeps = 100000): SoftValues {
  const { numStates: N, nActions: A, exitAction: X } = dag;
  let V = new Float64Array(N);
  const Q = new Float64Array(N * A).fill(-Infinity);
  let sweeps = 0;
  for (; sweeps < maxSweeps; sweeps++) {
    const next = new Float64Array(N);
    let change = 0;
    for (let s = 0; s < N; s++) {
      for (let a = 0; a < A; a++) {
        const e = s * A + a;
        if (!dag.mask[e]) continue;
        Q[e] = a === X ? dag.logR[s] : dag.logPB[e] + V[dag.child[e]];
      }
      next[s] = logSumExp(Q, s * A, A);
      change = Math.max(change, Math.abs(next[s] - V[s]));
    }
    V = next;
    if (change <= tol) break;
  }
  return { V, Q, sweeps: sweeps + 1 };
}

/** log-softmax of Q row by row: the soft-optimal policy π*(a|s) ∝ exp Q*(s,a). */
export function softmaxPolicy(dag: ExactDag, Q: Float64Array): Float64Array {
  const { numStates: N, nActions: A } = dag;
  const out = new Float64Array(N * A);
  for (let s = 0; s < N; s++) {
    const z = logSumExp(Q, s * A, A);
    for (let a = 0; a < A; a++) out[s * A + a] = dag.mask[s * A + a] ? Q[s * A + a] - z : -Infinity;
  }
  return out;
}

/**
 * Soft value of a policy, V^π(s) = Σ_a π(a|s)·(r(s,a) − log π(a|s) + V^π(s')), by backward DP
 * over the DAG (policy evaluation in the MDP of eq. (M)). Returns V^π(s0).
 */
export function policySoftValue(dag: ExactDag, logPi: Float64Array): number {
  const { numStates: N, nActions: A, exitAction: X } = dag;
  const V = new Float64Array(N);
  for (let s = N - 1; s >= 0; s--) {
    let v = 0;
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      if (!dag.mask[e] || logPi[e] === -Infinity) continue;
      const r = a === X ? dag.logR[s] : dag.logPB[e];
      v += Math.exp(logPi[e]) * (r - logPi[e] + (a === X ? 0 : V[dag.child[e]]));
    }
    V[s] = v;
  }
  return V[0];
}

/**
 * KL(q^π ‖ P_B) between the forward trajectory distribution of π and the backward one
 * R(x)/Z · P_B(τ|x), by the chain rule for Markov chains: the backward distribution is the
 * forward chain of P_F* (from flowOracle), so KL = Σ_s u^π(s)·KL(π(·|s) ‖ P_F*(·|s)).
 */
export function trajectoryKL(dag: ExactDag, logPi: Float64Array, logPFStar: Float64Array): number {
  const { numStates: N, nActions: A, exitAction: X } = dag;
  const u = new Float64Array(N);
  u[0] = 1;
  let kl = 0;
  for (let s = 0; s < N; s++) {
    if (u[s] === 0) continue;
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      if (!dag.mask[e] || logPi[e] === -Infinity) continue;
      const p = Math.exp(logPi[e]);
      kl += u[s] * p * (logPi[e] - logPFStar[e]);
      if (a !== X) u[dag.child[e]] += u[s] * p;
    }
  }
  return kl;
}

/** ½ Σ |p − q|. */
export function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i] - q[i]);
  return s / 2;
}

/** KL(p ‖ q) over the support of p. */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) s += p[i] * Math.log(p[i] / q[i]);
  return s;
}
