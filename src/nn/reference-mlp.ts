/**
 * ReferenceMlp: the test oracle for FusedMlp and TfjsMlp. Plain float64 loops, written to be
 * obviously correct rather than fast: dense one-hot input, z = x·W + b, ReLU, and the
 * textbook backward pass. Same interface and flat layout as the other implementations;
 * the float64 state is public for finite-difference checks.
 */
import { Rng } from '../core/rng.js';
import { countParams, initParams, layerSizes, type MlpSpec, type SparseMlp } from './mlp.js';

export class ReferenceMlp implements SparseMlp {
  readonly spec: MlpSpec;
  readonly numParams: number;
  /** Parameters and gradients, shared flat layout, float64. */
  readonly params64: Float64Array;
  readonly grads64: Float64Array;
  readonly m64: Float64Array;
  readonly v64: Float64Array;
  step = 0;
  private readonly sizes: number[];
  private readonly offs: number[]; // offset of W_l in the flat layout (b_l follows)
  private tapeIdx: number[][] = []; // per tape row: active indices
  private tapeActs: Float64Array[][] = []; // per tape row: post-ReLU activations of each hidden layer

  constructor(spec: MlpSpec, params: Float32Array | Float64Array) {
    this.spec = { ...spec, hidden: [...spec.hidden] };
    this.numParams = countParams(spec);
    if (params.length !== this.numParams) throw new RangeError('parameter count mismatch');
    this.params64 = Float64Array.from(params);
    this.grads64 = new Float64Array(this.numParams);
    this.m64 = new Float64Array(this.numParams);
    this.v64 = new Float64Array(this.numParams);
    this.sizes = layerSizes(spec);
    this.offs = [];
    let o = 0;
    for (let l = 0; l + 1 < this.sizes.length; l++) {
      this.offs.push(o);
      o += this.sizes[l] * this.sizes[l + 1] + this.sizes[l + 1];
    }
  }

  static create(spec: MlpSpec, seedOrRng: number | { uniform(): number }): ReferenceMlp {
    const rng = typeof seedOrRng === 'number' ? new Rng(seedOrRng) : seedOrRng;
    return new ReferenceMlp(spec, initParams(spec, rng));
  }

  get tapeRows(): number {
    return this.tapeIdx.length;
  }

  /** Activations of one row: [x (dense one-hot), h_1, …, h_{L-1}, output], float64. */
  private run(idx: number[]): Float64Array[] {
    const s = this.sizes;
    const p = this.params64;
    const x = new Float64Array(s[0]);
    for (const i of idx) x[i] += 1;
    const acts: Float64Array[] = [x];
    for (let l = 0; l + 1 < s.length; l++) {
      const a = acts[l];
      const fanIn = s[l];
      const fanOut = s[l + 1];
      const W = this.offs[l];
      const B = W + fanIn * fanOut;
      const z = new Float64Array(fanOut);
      for (let j = 0; j < fanOut; j++) {
        let sum = p[B + j];
        for (let i = 0; i < fanIn; i++) sum += a[i] * p[W + i * fanOut + j];
        // biome-ignore lint/complexity/useMathMinMax: ReLU as the kernels compute it (a NaN becomes 0, Math.max would keep it)
        z[j] = l + 2 < s.length ? (sum > 0 ? sum : 0) : sum;
      }
      acts.push(z);
    }
    return acts;
  }

  private rowIndices(indices: Int32Array, r: number): number[] {
    const { nnz, inputDim } = this.spec;
    const idx: number[] = [];
    for (let k = 0; k < nnz; k++) {
      const v = indices[r * nnz + k];
      if (!(v >= 0 && v < inputDim)) throw new RangeError(`input index ${v} outside [0, ${inputDim})`);
      idx.push(v);
    }
    return idx;
  }

  /** Float64 outputs [n × outputDim] (no tape). */
  forward64(indices: Int32Array, n: number): Float64Array {
    const D = this.spec.outputDim;
    const out = new Float64Array(n * D);
    for (let r = 0; r < n; r++) out.set(this.run(this.rowIndices(indices, r)).at(-1)!, r * D);
    return out;
  }

  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number {
    const D = this.spec.outputDim;
    const row0 = record ? this.tapeIdx.length : -1;
    for (let r = 0; r < n; r++) {
      const idx = this.rowIndices(indices, r);
      const acts = this.run(idx);
      out.set(acts[acts.length - 1], r * D);
      if (record) {
        this.tapeIdx.push(idx);
        this.tapeActs.push(acts.slice(1, -1));
      }
    }
    return row0;
  }

  backward(row0: number, n: number, dOut: Float32Array | Float64Array): void {
    if (row0 < 0 || row0 + n > this.tapeIdx.length) throw new RangeError('tape rows out of range');
    const s = this.sizes;
    const p = this.params64;
    const g = this.grads64;
    const L = s.length - 1;
    const D = this.spec.outputDim;
    for (let r = 0; r < n; r++) {
      const idx = this.tapeIdx[row0 + r];
      const x = new Float64Array(s[0]);
      for (const i of idx) x[i] += 1;
      const acts = [x, ...this.tapeActs[row0 + r]]; // inputs of layer l = acts[l]
      let dz = Float64Array.from(dOut.subarray(r * D, (r + 1) * D));
      for (let l = L - 1; l >= 0; l--) {
        const fanIn = s[l];
        const fanOut = s[l + 1];
        const W = this.offs[l];
        const B = W + fanIn * fanOut;
        const a = acts[l];
        for (let j = 0; j < fanOut; j++) g[B + j] += dz[j];
        for (let i = 0; i < fanIn; i++) for (let j = 0; j < fanOut; j++) g[W + i * fanOut + j] += a[i] * dz[j];
        if (l > 0) {
          const da = new Float64Array(fanIn);
          for (let i = 0; i < fanIn; i++) {
            let sum = 0;
            for (let j = 0; j < fanOut; j++) sum += p[W + i * fanOut + j] * dz[j];
            da[i] = a[i] > 0 ? sum : 0; // ReLU derivative (a = relu(z), so a > 0 ⇔ z > 0)
          }
          dz = da;
        }
      }
    }
  }

  resetTape(): void {
    this.tapeIdx = [];
    this.tapeActs = [];
  }

  zeroGrad(): void {
    this.grads64.fill(0);
  }

  /** Adam exactly as torch.optim.Adam (no weight decay, no amsgrad), in float64. */
  adamStep(lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    this.step++;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    for (let i = 0; i < this.numParams; i++) {
      const gi = this.grads64[i];
      this.m64[i] = beta1 * this.m64[i] + (1 - beta1) * gi;
      this.v64[i] = beta2 * this.v64[i] + (1 - beta2) * gi * gi;
      const denom = Math.sqrt(this.v64[i]) / Math.sqrt(bc2) + eps;
      this.params64[i] -= (lr / bc1) * (this.m64[i] / denom);
    }
  }

  getParams(): Float32Array {
    return Float32Array.from(this.params64);
  }

  setParams(p: Float32Array | Float64Array): void {
    if (p.length !== this.numParams) throw new RangeError('parameter count mismatch');
    this.params64.set(p);
  }

  getGrads(): Float32Array {
    return Float32Array.from(this.grads64);
  }

  polyakFrom(source: SparseMlp, tau: number): void {
    const src = source instanceof ReferenceMlp ? source.params64 : source.getParams();
    for (let i = 0; i < this.numParams; i++) this.params64[i] = (1 - tau) * this.params64[i] + tau * src[i];
  }

  dispose(): void {
    this.resetTape();
  }
}
