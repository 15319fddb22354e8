/**
 * A factored slot × word output head for slot-filling policies (bit sequences): instead of
 * one output unit per (slot, word) — L·W units, 3,840 at k = 8 and 12,288 at k = 10 — the
 * inner MLP emits, per slot j, a position logit p_j and a query a_j ∈ R^r, and
 *   logit(j, w) = p_j + c_w + a_j · e_w,
 * with e_w ∈ R^r a learned word embedding and c_w a learned word bias (parameters, not
 * network outputs; c_w lets the policy learn "these words are good anywhere" directly). The last
 * layer shrinks from hidden × L·W to hidden × L(1 + r); the expansion costs L·W·r per row.
 * The outputs after the L·W logits (exit, backward logits, log-flow) pass through unchanged,
 * so the wrapper is a drop-in SparseMlp with the same output layout as a dense head.
 */
import { Rng } from '../core/rng.js';
import type { MlpSpec, SparseMlp } from './mlp.js';

export interface FactoredHeadShape {
  slots: number; // L
  words: number; // W
  rank: number; // r
  /**
   * Whether slot j of input row i is open, read from the sparse input; the logits of closed
   * slots are masked by every caller, so they are written as 0 without the L·W·r expansion.
   */
  slotOpen?: (indices: Int32Array, i: number, j: number) => boolean;
}

/** The inner MLP's spec: [p (L)][a (L·r)][pass-through outputs]. */
export function innerSpec(outer: MlpSpec, h: FactoredHeadShape): MlpSpec {
  const pass = outer.outputDim - h.slots * h.words;
  if (pass < 0) throw new Error(`factored head: output ${outer.outputDim} < slots × words ${h.slots * h.words}`);
  return { ...outer, outputDim: h.slots * (1 + h.rank) + pass };
}

export class FactoredHeadMlp implements SparseMlp {
  readonly numParams: number;
  private readonly innerDim: number;
  private readonly pass: number;
  /** Word embeddings [W × r], their gradient and Adam moments. */
  private readonly E: Float32Array;
  private readonly gE: Float32Array;
  private readonly mE: Float32Array;
  private readonly vE: Float32Array;
  private step = 0;
  /** Inner outputs of the recorded rows (needed by backward), indexed by tape row. */
  private tape = new Float32Array(0);
  private scratch = new Float32Array(0);

  constructor(
    readonly spec: MlpSpec,
    readonly inner: SparseMlp,
    readonly shape: FactoredHeadShape,
    seed: number,
  ) {
    this.innerDim = inner.spec.outputDim;
    this.pass = spec.outputDim - shape.slots * shape.words;
    const n = shape.words * (shape.rank + 1); // embeddings [W × r], then biases [W] (start at 0)
    this.E = new Float32Array(n);
    this.gE = new Float32Array(n);
    this.mE = new Float32Array(n);
    this.vE = new Float32Array(n);
    const rng = new Rng(seed + 77_777);
    const bound = 1 / Math.sqrt(shape.rank); // like a linear layer's init with fan-in r
    for (let i = 0; i < shape.words * shape.rank; i++) this.E[i] = (2 * rng.uniform() - 1) * bound;
    this.numParams = inner.numParams + n;
  }

  get tapeRows(): number {
    return this.inner.tapeRows;
  }

  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number {
    const D = this.innerDim;
    if (this.scratch.length < n * D) this.scratch = new Float32Array(n * D);
    const z = this.scratch;
    const row0 = this.inner.forward(indices, n, z, record);
    if (record) {
      const need = (row0 + n) * D;
      if (this.tape.length < need) {
        const t = new Float32Array(Math.max(need, 2 * this.tape.length));
        t.set(this.tape.subarray(0, row0 * D));
        this.tape = t;
      }
      this.tape.set(z.subarray(0, n * D), row0 * D);
    }
    const { slots: L, words: W, rank: r } = this.shape,
      O = this.spec.outputDim,
      E = this.E,
      cOff = W * r;
    for (let i = 0; i < n; i++) {
      const zi = i * D,
        oi = i * O;
      for (let j = 0; j < L; j++) {
        const p = z[zi + j],
          a = zi + L + j * r,
          base = oi + j * W;
        if (this.shape.slotOpen && !this.shape.slotOpen(indices, i, j)) {
          out.fill(0, base, base + W);
          continue;
        }
        for (let w = 0; w < W; w++) {
          let s = p + E[cOff + w];
          for (let q = 0; q < r; q++) s += z[a + q] * E[w * r + q];
          out[base + w] = s;
        }
      }
      for (let c = 0; c < this.pass; c++) out[oi + L * W + c] = z[zi + L * (1 + r) + c];
    }
    return row0;
  }

  backward(row0: number, n: number, dOut: Float32Array): void {
    const { slots: L, words: W, rank: r } = this.shape,
      O = this.spec.outputDim,
      D = this.innerDim,
      E = this.E,
      gE = this.gE;
    const dz = new Float32Array(n * D);
    for (let i = 0; i < n; i++) {
      const zi = (row0 + i) * D,
        di = i * D,
        oi = i * O;
      for (let j = 0; j < L; j++) {
        const base = oi + j * W,
          a = L + j * r;
        let dp = 0,
          any = false;
        for (let w = 0; w < W; w++) if (dOut[base + w] !== 0) (any = true), (dp += dOut[base + w]);
        if (!any) continue; // a filled (masked) slot gets no gradient
        dz[di + j] = dp;
        for (let w = 0; w < W; w++) {
          const g = dOut[base + w];
          if (g === 0) continue;
          gE[W * r + w] += g;
          for (let q = 0; q < r; q++) {
            dz[di + a + q] += g * E[w * r + q];
            gE[w * r + q] += g * this.tape[zi + a + q];
          }
        }
      }
      for (let c = 0; c < this.pass; c++) dz[di + L * (1 + r) + c] = dOut[oi + L * W + c];
    }
    this.inner.backward(row0, n, dz);
  }

  resetTape(): void {
    this.inner.resetTape();
  }

  zeroGrad(): void {
    this.inner.zeroGrad();
    this.gE.fill(0);
  }

  adamStep(lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    this.inner.adamStep(lr, beta1, beta2, eps);
    this.step++;
    const bc1 = 1 - Math.pow(beta1, this.step),
      sbc2 = Math.sqrt(1 - Math.pow(beta2, this.step));
    for (let i = 0; i < this.E.length; i++) {
      const g = this.gE[i];
      this.mE[i] = beta1 * this.mE[i] + (1 - beta1) * g;
      this.vE[i] = beta2 * this.vE[i] + (1 - beta2) * g * g;
      this.E[i] -= (lr / bc1) * (this.mE[i] / (Math.sqrt(this.vE[i]) / sbc2 + eps));
    }
  }

  /** Inner parameters, then the word embeddings. */
  getParams(): Float32Array {
    const p = new Float32Array(this.numParams);
    p.set(this.inner.getParams());
    p.set(this.E, this.inner.numParams);
    return p;
  }

  setParams(p: Float32Array): void {
    this.inner.setParams(p.subarray(0, this.inner.numParams));
    this.E.set(p.subarray(this.inner.numParams));
  }

  getGrads(): Float32Array {
    const g = new Float32Array(this.numParams);
    g.set(this.inner.getGrads());
    g.set(this.gE, this.inner.numParams);
    return g;
  }

  polyakFrom(source: SparseMlp, tau: number): void {
    if (!(source instanceof FactoredHeadMlp)) throw new Error('factored head: Polyak source must be a factored head too');
    this.inner.polyakFrom(source.inner, tau);
    for (let i = 0; i < this.E.length; i++) this.E[i] = (1 - tau) * this.E[i] + tau * source.E[i];
  }

  dispose(): void {
    this.inner.dispose();
  }
}
