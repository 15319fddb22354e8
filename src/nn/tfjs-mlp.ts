/**
 * TfjsMlp: the general-engine implementation of SparseMlp on @tensorflow/tfjs (any backend:
 * tfjs-node(-gpu), wasm, cpu — call selectBackend() from core/backend.ts first).
 *
 * Following docs/design.md §3: the sparse input is a multi-hot matrix times W1 (a sum of W1 rows;
 * gather has no gradient on wasm), every linear layer has a custom gradient with explicit
 * transposes (wasm matMul is fast only without transpose flags) and a ones-row matMul for
 * the bias gradient (axis-0 reductions are slow). The "tape" keeps only the input rows;
 * backward recomputes their forward inside tf.variableGrads (one batched pass), which gives
 * the same gradients as the fused kernel's cached activations.
 */
import { tf } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { countParams, initParams, layerSizes, type MlpSpec, type SparseMlp } from './mlp.js';
import { validateSpec, type AdamState } from './fused-mlp.js';

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

let instances = 0;

/** x·W + b with transposes made explicit in the gradient (fast wasm matMul path). */
const linear = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const ones = tf.ones([1, dy.shape[0]]);
      return [tf.matMul(dy, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy), tf.reshape(tf.matMul(ones, dy), [dy.shape[1]])];
    },
  };
}) as unknown as CustomGradientFunc) as (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** The input layer: like `linear`, but the multi-hot input is a constant, so its gradient is skipped. */
const inputLinear = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.add(tf.matMul(x, w), b),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const xs = saved[0] as tf.Tensor2D;
      const ones = tf.ones([1, dy.shape[0]]);
      return [tf.zerosLike(xs), tf.matMul(tf.transpose(xs), dy), tf.reshape(tf.matMul(ones, dy), [dy.shape[1]])];
    },
  };
}) as unknown as CustomGradientFunc) as (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

export class TfjsMlp implements SparseMlp {
  readonly spec: MlpSpec;
  readonly numParams: number;
  private readonly sizes: number[];
  private readonly vars: tf.Variable[] = []; // W_0, b_0, W_1, b_1, … (shared flat layout order)
  private readonly grads: tf.Variable[] = [];
  private readonly m: tf.Variable[] = [];
  private readonly v: tf.Variable[] = [];
  private tape: Int32Array;
  private rows = 0;
  private step = 0;
  private disposed = false;

  private constructor(spec: MlpSpec, params: Float32Array) {
    validateSpec(spec);
    this.spec = { ...spec, hidden: [...spec.hidden] };
    this.numParams = countParams(spec);
    this.sizes = layerSizes(spec);
    const id = instances++;
    let o = 0;
    const s = this.sizes;
    for (let l = 0; l + 1 < s.length; l++) {
      const shapes: [number[], string][] = [
        [[s[l], s[l + 1]], `W${l}`],
        [[s[l + 1]], `b${l}`],
      ];
      for (const [shape, name] of shapes) {
        const size = shape.reduce((a, b) => a * b, 1);
        const init = tf.tensor(params.subarray(o, o + size), shape);
        this.vars.push(tf.variable(init, true, `flowtune_mlp${id}_${name}`));
        init.dispose();
        for (const list of [this.grads, this.m, this.v]) list.push(tf.tidy(() => tf.variable(tf.zeros(shape), false)));
        o += size;
      }
    }
    this.tape = new Int32Array(256 * spec.nnz);
  }

  /** PyTorch-default init from a seed (or an Rng); same seed ⇒ same params as FusedMlp. */
  static create(spec: MlpSpec, seedOrRng: number | { uniform(): number }): TfjsMlp {
    validateSpec(spec);
    const rng = typeof seedOrRng === 'number' ? new Rng(seedOrRng) : seedOrRng;
    return new TfjsMlp(spec, initParams(spec, rng));
  }

  static fromParams(spec: MlpSpec, params: Float32Array): TfjsMlp {
    validateSpec(spec);
    if (params.length !== countParams(spec)) throw new RangeError(`expected ${countParams(spec)} parameters, got ${params.length}`);
    return new TfjsMlp(spec, params);
  }

  get tapeRows(): number {
    return this.rows;
  }

  get adamSteps(): number {
    return this.step;
  }

  /** The outputs as a tensor [n × outputDim] of a multi-hot input (inside a tidy / gradient scope). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    const L = this.sizes.length - 1;
    let h = inputLinear(x, this.vars[0] as tf.Tensor2D, this.vars[1] as tf.Tensor1D);
    for (let l = 1; l < L; l++) {
      h = linear(tf.relu(h), this.vars[2 * l] as tf.Tensor2D, this.vars[2 * l + 1] as tf.Tensor1D);
    }
    return h;
  }

  /** Multi-hot matrix [n × inputDim] of rows of `indices` (validated). */
  multiHot(indices: Int32Array, n: number): tf.Tensor2D {
    const { nnz, inputDim } = this.spec;
    const x = new Float32Array(n * inputDim);
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < nnz; k++) {
        const v = indices[r * nnz + k];
        if (!(v >= 0 && v < inputDim)) throw new RangeError(`input index ${v} outside [0, ${inputDim})`);
        x[r * inputDim + v] += 1;
      }
    }
    return tf.tensor2d(x, [n, inputDim]);
  }

  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number {
    this.live();
    const { nnz, outputDim } = this.spec;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad row count ${n}`);
    if (indices.length < n * nnz) throw new RangeError(`indices hold ${indices.length} values, need ${n * nnz}`);
    if (out.length < n * outputDim) throw new RangeError(`out holds ${out.length} values, need ${n * outputDim}`);
    if (n > 0) {
      const y = tf.tidy(() => this.apply(this.multiHot(indices, n)));
      out.set(y.dataSync() as Float32Array);
      y.dispose();
    }
    if (!record) return -1;
    const row0 = this.rows;
    const need = (this.rows + n) * nnz;
    if (need > this.tape.length) {
      const t = new Int32Array(Math.max(need, 2 * this.tape.length));
      t.set(this.tape.subarray(0, this.rows * nnz));
      this.tape = t;
    }
    this.tape.set(indices.subarray(0, n * nnz), this.rows * nnz);
    this.rows += n;
    return row0;
  }

  backward(row0: number, n: number, dOut: Float32Array): void {
    this.live();
    const { nnz, outputDim } = this.spec;
    if (!Number.isInteger(row0) || !Number.isInteger(n) || row0 < 0 || n < 0 || row0 + n > this.rows) {
      throw new RangeError(`tape rows [${row0}, ${row0 + n}) outside the tape [0, ${this.rows})`);
    }
    if (dOut.length < n * outputDim) throw new RangeError(`dOut holds ${dOut.length} values, need ${n * outputDim}`);
    if (n === 0) return;
    tf.tidy(() => {
      const x = this.multiHot(this.tape.subarray(row0 * nnz, (row0 + n) * nnz), n);
      const dy = tf.tensor2d(dOut.subarray(0, n * outputDim), [n, outputDim]);
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(this.apply(x), dy)) as tf.Scalar, this.vars);
      this.vars.forEach((p, i) => this.grads[i].assign(tf.add(this.grads[i], grads[p.name])));
    });
  }

  resetTape(): void {
    this.rows = 0;
  }

  zeroGrad(): void {
    this.live();
    tf.tidy(() => this.grads.forEach((g) => g.assign(tf.zerosLike(g))));
  }

  /** torch.optim.Adam on every variable (no weight decay, no amsgrad). */
  adamStep(lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    this.live();
    this.step++;
    const stepSize = lr / (1 - Math.pow(beta1, this.step));
    const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, this.step));
    tf.tidy(() => {
      this.vars.forEach((p, i) => {
        const g = this.grads[i];
        const m = tf.add(tf.mul(this.m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
  }

  getParams(): Float32Array {
    this.live();
    return this.readFlat(this.vars);
  }

  setParams(p: Float32Array): void {
    this.live();
    this.writeFlat(this.vars, p);
  }

  getGrads(): Float32Array {
    this.live();
    return this.readFlat(this.grads);
  }

  getOptimizerState(): AdamState {
    this.live();
    return { step: this.step, m: this.readFlat(this.m), v: this.readFlat(this.v) };
  }

  setOptimizerState(st: AdamState): void {
    this.live();
    this.writeFlat(this.m, st.m);
    this.writeFlat(this.v, st.v);
    this.step = st.step;
  }

  polyakFrom(source: SparseMlp, tau: number): void {
    this.live();
    if (!(tau >= 0 && tau <= 1)) throw new RangeError(`polyak tau ${tau} outside [0, 1]`);
    if (source.numParams !== this.numParams) throw new RangeError('polyakFrom: parameter counts differ');
    if (source instanceof TfjsMlp) {
      tf.tidy(() => {
        this.vars.forEach((p, i) => p.assign(tf.add(tf.mul(p, 1 - tau), tf.mul(source.vars[i], tau))));
      });
      return;
    }
    const src = source.getParams();
    const cur = this.getParams();
    for (let i = 0; i < cur.length; i++) cur[i] = (1 - tau) * cur[i] + tau * src[i];
    this.setParams(cur);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const list of [this.vars, this.grads, this.m, this.v]) for (const t of list) t.dispose();
  }

  private live(): void {
    if (this.disposed) throw new Error('TfjsMlp used after dispose()');
  }

  private readFlat(list: tf.Variable[]): Float32Array {
    const out = new Float32Array(this.numParams);
    let o = 0;
    for (const t of list) {
      out.set(t.dataSync() as Float32Array, o);
      o += t.size;
    }
    return out;
  }

  private writeFlat(list: tf.Variable[], p: Float32Array): void {
    if (p.length !== this.numParams) throw new RangeError(`expected ${this.numParams} values, got ${p.length}`);
    let o = 0;
    for (const t of list) {
      const v = tf.tensor(p.subarray(o, o + t.size), t.shape);
      t.assign(v);
      v.dispose();
      o += t.size;
    }
  }
}
