/**
 * A vectorized GFlowNet environment: a DAG with initial state s0, walked one action at a
 * time. States are rows of an Int32Array [n × stateDim]. Forward actions are
 * 0..nActions−1 with the exit ("stop") action last; taking exit at a state x ends the
 * trajectory with object x. Backward actions 0..nBackActions−1 each undo one forward
 * move (the env defines the pairing with `backwardActionOf`).
 */
export interface Env {
  readonly name: string;
  readonly stateDim: number;
  readonly nActions: number;
  readonly exitAction: number; // = nActions − 1
  readonly nBackActions: number;
  /** Maximum number of forward actions in one trajectory, exit included. */
  readonly maxSteps: number;
  /** Sparse one-hot encoding: `inputDim` inputs, `nnz` of them active per state. */
  readonly inputDim: number;
  readonly nnz: number;

  initialStates(n: number): Int32Array;
  /** out[i × nActions + a] = 1 when action a is allowed at state i. */
  forwardMask(states: Int32Array, n: number, out: Uint8Array): void;
  /** out[i × nBackActions + a] = 1 when backward action a is allowed at state i. */
  backwardMask(states: Int32Array, n: number, out: Uint8Array): void;
  /** Applies non-exit forward actions row by row: out may alias states. */
  step(states: Int32Array, actions: Int32Array, n: number, out: Int32Array): void;
  backwardStep(states: Int32Array, backActions: Int32Array, n: number, out: Int32Array): void;
  /** The backward action that undoes forward action `action` (taken to reach the child). */
  backwardActionOf(action: number): number;
  isInitial(states: Int32Array, i: number): boolean;
  logReward(states: Int32Array, n: number, out: Float64Array): void;
  encode(states: Int32Array, n: number, out: Int32Array): void;
}

/** Envs small enough to list every state: what the exact oracles need. */
export interface EnumerableEnv extends Env {
  /** All states, rows in a topological order (parents before children), s0 first. */
  allStates(): Int32Array;
  numStates(): number;
  /** Row index of state i of `states` in allStates(). */
  indexOf(states: Int32Array, i: number): number;
}
