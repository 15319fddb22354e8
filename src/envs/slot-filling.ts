import type { EnumerableEnv } from '../gfn/env.js';
import type { SlotActionEnv } from '../gfn/two-stage.js';
import type { BackwardMappable } from '../metrics/logprob.js';
import { usage } from '../core/errors.js';

/**
 * The DAG shared by the bit-sequence and molecule benchmarks: a state is `slots` positions,
 * each empty (−1) or holding a value in [0, values); forward action j·values + v fills empty
 * slot j with v, backward action j empties slot j, so an object with f filled slots has f
 * parents and P_B is uniform over them (docs/design.md §5). Exit is the last action — always
 * allowed, or only once every slot is filled. Input encoding: one-hot of (value + 1) per slot.
 */
export abstract class SlotFillingEnv implements EnumerableEnv, BackwardMappable, SlotActionEnv {
  abstract readonly name: string;
  readonly stateDim: number;
  readonly nActions: number;
  readonly exitAction: number;
  readonly nBackActions: number;
  readonly maxSteps: number;
  readonly inputDim: number;
  readonly nnz: number;
  private order?: Int32Array; // base-(values + 1) code → row of allStates()

  constructor(
    readonly slots: number,
    readonly values: number,
    private readonly exitOnlyWhenFull: boolean,
    private readonly enumerationLimit: number,
  ) {
    this.stateDim = slots;
    this.nActions = slots * values + 1;
    this.exitAction = this.nActions - 1;
    this.nBackActions = slots;
    this.maxSteps = slots + 1;
    this.inputDim = slots * (values + 1);
    this.nnz = slots;
  }

  abstract logReward(states: Int32Array, n: number, out: Float64Array): void;

  initialStates(n: number): Int32Array {
    return new Int32Array(n * this.slots).fill(-1);
  }

  forwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    const L = this.slots,
      W = this.values,
      A = this.nActions;
    for (let i = 0; i < n; i++) {
      let full = true;
      for (let j = 0; j < L; j++) {
        const empty = states[i * L + j] < 0;
        if (empty) full = false;
        out.fill(empty ? 1 : 0, i * A + j * W, i * A + (j + 1) * W);
      }
      out[i * A + A - 1] = full || !this.exitOnlyWhenFull ? 1 : 0;
    }
  }

  /** The forward mask per slot (every value is allowed in an open slot), exit last: what the two-stage policy reads. */
  slotMask(states: Int32Array, n: number, out: Uint8Array): void {
    const L = this.slots;
    for (let i = 0; i < n; i++) {
      let full = true;
      for (let j = 0; j < L; j++) {
        const empty = states[i * L + j] < 0;
        if (empty) full = false;
        out[i * (L + 1) + j] = empty ? 1 : 0;
      }
      out[i * (L + 1) + L] = full || !this.exitOnlyWhenFull ? 1 : 0;
    }
  }

  backwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    for (let i = 0; i < n * this.slots; i++) out[i] = states[i] >= 0 ? 1 : 0;
  }

  step(states: Int32Array, actions: Int32Array, n: number, out: Int32Array): void {
    const L = this.slots,
      W = this.values;
    if (out !== states) out.set(states.subarray(0, n * L));
    for (let i = 0; i < n; i++) {
      const a = actions[i],
        j = Math.floor(a / W);
      if (a < 0 || j >= L || out[i * L + j] >= 0) throw new Error(`invalid ${this.name} action ${a}`);
      out[i * L + j] = a % W;
    }
  }

  backwardStep(states: Int32Array, backActions: Int32Array, n: number, out: Int32Array): void {
    const L = this.slots;
    if (out !== states) out.set(states.subarray(0, n * L));
    for (let i = 0; i < n; i++) {
      const j = backActions[i];
      if (j < 0 || j >= L || out[i * L + j] < 0) throw new Error(`invalid ${this.name} backward action ${j}`);
      out[i * L + j] = -1;
    }
  }

  backwardActionOf(action: number): number {
    return Math.floor(action / this.values);
  }

  /** The forward action that filled slot j of child i (the inverse of backwardActionOf). */
  forwardActionOf(child: Int32Array, i: number, j: number): number {
    return j * this.values + child[i * this.slots + j];
  }

  isInitial(states: Int32Array, i: number): boolean {
    for (let j = 0; j < this.slots; j++) if (states[i * this.slots + j] >= 0) return false;
    return true;
  }

  encode(states: Int32Array, n: number, out: Int32Array): void {
    const L = this.slots,
      W1 = this.values + 1;
    for (let i = 0; i < n * L; i++) out[i] = (i % L) * W1 + states[i] + 1;
  }

  // ---- enumeration (small instances only: (values + 1)^slots states) ----

  numStates(): number {
    return (this.values + 1) ** this.slots;
  }

  /** Rows sorted by the number of filled slots (a topological order), s0 first. */
  allStates(): Int32Array {
    const N = this.numStates(),
      L = this.slots,
      B = this.values + 1;
    usage(N <= this.enumerationLimit, `${this.name} with ${N} states is too large to enumerate`);
    const filled = new Int32Array(N);
    for (let c = 0; c < N; c++) {
      let f = 0;
      for (let j = 0, cc = c; j < L; j++, cc = Math.floor(cc / B)) if (cc % B !== 0) f++;
      filled[c] = f;
    }
    const codes = Array.from({ length: N }, (_, c) => c).sort((a, b) => filled[a] - filled[b] || a - b);
    const out = new Int32Array(N * L);
    this.order = new Int32Array(N);
    codes.forEach((c, row) => {
      this.order![c] = row;
      for (let j = 0, cc = c; j < L; j++, cc = Math.floor(cc / B)) out[row * L + j] = (cc % B) - 1;
    });
    return out;
  }

  indexOf(states: Int32Array, i: number): number {
    if (!this.order) this.allStates();
    const L = this.slots,
      B = this.values + 1;
    let c = 0;
    for (let j = L - 1; j >= 0; j--) c = c * B + states[i * L + j] + 1;
    return this.order![c];
  }
}
