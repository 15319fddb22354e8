/**
 * MemoMlp: a SparseMlp that computes each distinct input row once per parameter version.
 *
 * Soft Q-learning on a small state space evaluates the same states over and over within one
 * iteration: every trajectory starts at s0, the replay batch repeats popular states, s' of one
 * transition is s of the next, and the target net is asked for Q̄(s') and Q̄(s) of the new
 * transitions and then of the replay batch with the same weights. On hypergrid 4-D H = 8 this
 * is ~1,450 forward rows per M-DQN iteration for ~700 distinct ones.
 *
 * Forward looks every input row up in a hash table keyed by its active indices; only the rows
 * not seen since the last parameter change go through the inner net, the others copy its
 * cached outputs. Recorded rows are "virtual": each maps to the inner tape row that holds its
 * activations, and backward first lays those rows out in order with the inner engine's
 * copyTapeRows, so every occurrence is backpropagated exactly as if it had had its own pass.
 * The inner engine must offer copyTapeRows (a promise that its forward is row-independent):
 * results are then bitwise those of the unwrapped net.
 *
 * The cache is dropped whenever the parameters change through this wrapper (adamStep,
 * setParams, polyakFrom), on resetTape, and on invalidate() — the owner calls invalidate() when
 * the inner net may have changed behind the wrapper's back.
 */
import type { MlpSpec, SparseMlp } from './mlp.js';

type TapeCopyMlp = SparseMlp & { copyTapeRows(src: Int32Array, n: number): number };

/** Whether `net` can be memoized (its engine copies tape rows, so its forward is row-independent). */
export function canMemoize(net: SparseMlp): net is TapeCopyMlp {
  return typeof net.copyTapeRows === 'function';
}

const EMPTY = 0; // hash slots hold entry + 1

export class MemoMlp implements SparseMlp {
  readonly spec: MlpSpec;
  readonly numParams: number;
  private asked = 0;
  private computed = 0;
  private readonly K: number; // key width: the active indices of a row
  private readonly O: number;
  private table = new Int32Array(1024);
  private keys: Int32Array;
  private outs: Float32Array;
  /** inner tape row of each entry's activations, −1 when it was computed without recording */
  private innerRow: Int32Array;
  /** call in which an entry was last scheduled for computation (so a row repeated within a call is computed once) */
  private scheduled: Int32Array;
  private count = 0;
  private call = 0;
  private vrows = new Int32Array(1024); // virtual tape row → inner tape row
  private nv = 0;
  private ent = new Int32Array(256);
  private miss = new Int32Array(256);
  private missIdx = new Int32Array(0); // the computed rows' indices and outputs (scratch)
  private missOut = new Float32Array(0);

  constructor(readonly inner: TapeCopyMlp) {
    this.spec = inner.spec;
    this.numParams = inner.numParams;
    this.K = inner.spec.nnz;
    this.O = inner.spec.outputDim;
    this.keys = new Int32Array(256 * this.K);
    this.outs = new Float32Array(256 * this.O);
    this.innerRow = new Int32Array(256);
    this.scheduled = new Int32Array(256);
  }

  get tapeRows(): number {
    return this.nv;
  }

  /** Rows asked for and rows the inner net computed, since construction (for profiling and tests). */
  get stats(): { rows: number; computed: number } {
    return { rows: this.asked, computed: this.computed };
  }

  /** Distinct rows cached for the current parameters. */
  get cachedRows(): number {
    return this.count;
  }

  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number {
    const { K, O } = this;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad row count ${n}`);
    if (indices.length < n * K) throw new RangeError(`indices hold ${indices.length} values, need ${n * K}`);
    if (out.length < n * O) throw new RangeError(`out holds ${out.length} values, need ${n * O}`);
    if (this.ent.length < n) (this.ent = new Int32Array(2 * n)), (this.miss = new Int32Array(2 * n));
    const { ent, miss } = this;
    const call = ++this.call;
    let m = 0;
    for (let i = 0; i < n; i++) {
      let e = this.lookup(indices, i * K);
      if (e < 0) {
        e = this.insert(indices, i * K);
        this.scheduled[e] = call;
        miss[m++] = i;
      } else if (record && this.innerRow[e] < 0 && this.scheduled[e] !== call) {
        // cached without activations: recompute it on the tape (same outputs, bitwise)
        this.scheduled[e] = call;
        miss[m++] = i;
      }
      ent[i] = e;
    }
    if (m > 0) {
      if (this.missIdx.length < m * K) (this.missIdx = new Int32Array(2 * m * K)), (this.missOut = new Float32Array(2 * m * O));
      const idx = this.missIdx,
        res = this.missOut,
        outs = this.outs;
      for (let j = 0; j < m; j++) for (let k = 0, a = miss[j] * K; k < K; k++) idx[j * K + k] = indices[a + k];
      const r0 = this.inner.forward(idx, m, res, record);
      for (let j = 0; j < m; j++) {
        const e = ent[miss[j]];
        for (let c = 0; c < O; c++) outs[e * O + c] = res[j * O + c];
        this.innerRow[e] = record ? r0 + j : -1;
      }
    }
    const outs = this.outs;
    for (let i = 0; i < n; i++) {
      const src = ent[i] * O,
        dst = i * O;
      for (let c = 0; c < O; c++) out[dst + c] = outs[src + c];
    }
    this.asked += n;
    this.computed += m;
    if (!record) return -1;
    if (this.vrows.length < this.nv + n) {
      const grown = new Int32Array(2 * (this.nv + n));
      grown.set(this.vrows.subarray(0, this.nv));
      this.vrows = grown;
    }
    for (let i = 0; i < n; i++) this.vrows[this.nv + i] = this.innerRow[ent[i]];
    const row0 = this.nv;
    this.nv += n;
    return row0;
  }

  backward(row0: number, n: number, dOut: Float32Array): void {
    if (!Number.isInteger(row0) || !Number.isInteger(n) || row0 < 0 || n < 0 || row0 + n > this.nv) {
      throw new RangeError(`tape rows [${row0}, ${row0 + n}) outside the tape [0, ${this.nv})`);
    }
    const src = this.vrows.subarray(row0, row0 + n);
    let contiguous = true;
    for (let i = 1; i < n && contiguous; i++) contiguous = src[i] === src[0] + i;
    const r = contiguous && n > 0 ? src[0] : this.inner.copyTapeRows(src, n);
    this.inner.backward(r, n, dOut);
  }

  resetTape(): void {
    this.inner.resetTape();
    this.nv = 0;
    this.invalidate();
  }

  /** Forgets every cached row (call it when the inner net's parameters may have changed). */
  invalidate(): void {
    if (this.count > 0) this.table.fill(EMPTY);
    this.count = 0;
  }

  zeroGrad(): void {
    this.inner.zeroGrad();
  }

  adamStep(lr: number, beta1?: number, beta2?: number, eps?: number): void {
    this.inner.adamStep(lr, beta1, beta2, eps);
    this.invalidate();
  }

  getParams(): Float32Array {
    return this.inner.getParams();
  }

  setParams(p: Float32Array): void {
    this.inner.setParams(p);
    this.invalidate();
  }

  getGrads(): Float32Array {
    return this.inner.getGrads();
  }

  polyakFrom(source: SparseMlp, tau: number): void {
    this.inner.polyakFrom(source instanceof MemoMlp ? source.inner : source, tau);
    this.invalidate();
  }

  dispose(): void {
    this.inner.dispose();
  }

  private hash(a: Int32Array, off: number): number {
    let h = 0x811c9dc5;
    for (let k = 0; k < this.K; k++) h = Math.imul(h ^ a[off + k], 0x01000193);
    h ^= h >>> 15;
    return Math.imul(h, 0x2c1b3c6d); // an int32 (no >>> 0: a uint32 above 2^31 would be boxed); callers mask it
  }

  private lookup(a: Int32Array, off: number): number {
    const { K, keys, table } = this;
    const mask = table.length - 1;
    for (let s = this.hash(a, off) & mask; ; s = (s + 1) & mask) {
      const t = table[s];
      if (t === EMPTY) return -1;
      const e = t - 1;
      let k = 0;
      while (k < K && keys[e * K + k] === a[off + k]) k++;
      if (k === K) return e;
    }
  }

  private insert(a: Int32Array, off: number): number {
    if (2 * (this.count + 1) > this.table.length) this.rehash(2 * this.table.length);
    const e = this.count++;
    if (e === this.innerRow.length) {
      const grow = <T extends Int32Array | Float32Array>(x: T, w: number): T => {
        const y = new (x.constructor as new (n: number) => T)(2 * e * w);
        y.set(x);
        return y;
      };
      this.keys = grow(this.keys, this.K);
      this.outs = grow(this.outs, this.O);
      this.innerRow = grow(this.innerRow, 1);
      this.scheduled = grow(this.scheduled, 1);
    }
    const keys = this.keys;
    for (let k = 0, K = this.K; k < K; k++) keys[e * K + k] = a[off + k];
    this.place(e);
    return e;
  }

  private place(e: number): void {
    const mask = this.table.length - 1;
    let s = this.hash(this.keys, e * this.K) & mask;
    while (this.table[s] !== EMPTY) s = (s + 1) & mask;
    this.table[s] = e + 1;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let e = 0; e < this.count; e++) this.place(e);
  }
}
