import type { EnumerableEnv } from '../gfn/env.js';
import {
  buildDag,
  flowOracle,
  klDivergence,
  policySoftValue,
  softmaxPolicy,
  softValueIteration,
  targetDistribution,
  terminalDistribution,
  totalVariation,
  trajectoryKL,
} from '../gfn/exact.js';
import { logSumExp } from '../core/math.js';
import { Rng } from '../core/rng.js';

export interface TheoremReport {
  states: number;
  logZFlow: number; // F(s0) from the flow recursion
  logZSoftValue: number; // V*(s0) from soft value iteration
  sweeps: number;
  maxAbsVMinusLogF: number; // max_s |V*(s) − log F(s)|
  maxAbsQMinusLogEdgeFlow: number; // max_(s,s') |Q*(s,s') − log F(s→s')|
  tvSoftOptimal: number; // TV(terminal distribution of softmax(Q*), R/Z)
  policies: number;
  valueIdentityMaxError: number; // max_π |V^π(s0) − (log Z − KL(q^π ‖ P_B))|
  minKlGap: number; // min_π KL(q^π ‖ P_B) − KL(d^π ‖ R/Z) (≥ 0 by the theorem)
}

/**
 * Checks docs/design.md eq. (M) on an enumerable DAG with uniform P_B: soft value iteration on
 * the MDP against the flow recursion, the soft-optimal policy's terminal distribution
 * against R/Z, and V^π(s0) = log Z − KL(q^π ‖ P_B) for random policies (policy evaluation
 * on one side; the flow oracle and the KL chain rule on the other).
 */
export function verifyTheorem(env: EnumerableEnv, opts: { policies: number; seed: number }): TheoremReport {
  const dag = buildDag(env);
  const N = dag.numStates,
    A = dag.nActions,
    X = dag.exitAction;
  const flow = flowOracle(dag);
  const svi = softValueIteration(dag);
  let maxV = 0,
    maxQ = 0;
  for (let s = 0; s < N; s++) {
    maxV = Math.max(maxV, Math.abs(svi.V[s] - flow.logF[s]));
    for (let a = 0; a < A; a++) {
      const e = s * A + a;
      if (!dag.mask[e]) continue;
      const logEdge = a === X ? dag.logR[s] : flow.logF[dag.child[e]] + dag.logPB[e];
      maxQ = Math.max(maxQ, Math.abs(svi.Q[e] - logEdge));
    }
  }
  const target = targetDistribution(dag);
  const tvSoftOptimal = totalVariation(terminalDistribution(dag, softmaxPolicy(dag, svi.Q)), target);

  const rng = new Rng(opts.seed);
  let identityErr = 0,
    minGap = Infinity;
  for (let k = 0; k < opts.policies; k++) {
    const logits = new Float64Array(N * A);
    for (let e = 0; e < N * A; e++) logits[e] = dag.mask[e] ? 2 * rng.normal() : -Infinity;
    const logPi = new Float64Array(N * A);
    for (let s = 0; s < N; s++) {
      const z = logSumExp(logits, s * A, A);
      for (let a = 0; a < A; a++) logPi[s * A + a] = logits[s * A + a] - z;
    }
    const v = policySoftValue(dag, logPi);
    const klTraj = trajectoryKL(dag, logPi, flow.logPF);
    identityErr = Math.max(identityErr, Math.abs(v - (flow.logZ - klTraj)));
    minGap = Math.min(minGap, klTraj - klDivergence(terminalDistribution(dag, logPi), target));
  }
  return {
    states: N,
    logZFlow: flow.logZ,
    logZSoftValue: svi.V[0],
    sweeps: svi.sweeps,
    maxAbsVMinusLogF: maxV,
    maxAbsQMinusLogEdgeFlow: maxQ,
    tvSoftOptimal,
    policies: opts.policies,
    valueIdentityMaxError: identityErr,
    minKlGap: minGap,
  };
}
