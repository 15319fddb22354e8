/**
 * The benchmark policy network: an MLP whose input is a sparse binary vector (one-hot per
 * coordinate, so a state is the list of its `nnz` active input indices), ReLU hidden
 * layers, and a linear output layer. Two implementations share this interface: the tfjs
 * one (general engine, any backend) and the fused wasm-SIMD kernel (fast path for small
 * benchmark policies); tests keep their gradients equal.
 *
 * Activations are kept on a "tape": `forward(..., record = true)` appends the rows it
 * computes, so the rollout's forward pass is reused by the loss's backward pass.
 */
export interface MlpSpec {
  inputDim: number; // size of the (virtual) one-hot input vector
  nnz: number; // active inputs per row
  hidden: number[]; // e.g. [256, 256]
  outputDim: number;
}

export interface SparseMlp {
  readonly spec: MlpSpec;
  readonly numParams: number;
  /** Rows on the tape since the last resetTape(). */
  readonly tapeRows: number;

  /**
   * Outputs for n rows. `indices` is Int32Array [n × nnz] of active input indices (each in
   * [0, inputDim), distinct within a row). Writes out[n × outputDim]. When `record` is
   * true, the activations are appended to the tape and the first tape row is returned;
   * otherwise returns -1 and the tape is untouched.
   */
  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number;

  /** Accumulates parameter gradients for tape rows [row0, row0 + n) given dL/d outputs [n × outputDim]. */
  backward(row0: number, n: number, dOut: Float32Array): void;

  resetTape(): void;
  zeroGrad(): void;

  /** One Adam step on the accumulated gradients (bias-corrected; step counter kept inside). */
  adamStep(lr: number, beta1?: number, beta2?: number, eps?: number): void;

  /** Flat copies (for checkpoints, target networks and parity tests), in one fixed layout. */
  getParams(): Float32Array;
  setParams(p: Float32Array): void;
  getGrads(): Float32Array;

  /** this ← (1 − tau)·this + tau·source (Polyak average; tau = 1 copies). */
  polyakFrom(source: SparseMlp, tau: number): void;

  /**
   * Optional: appends copies of tape rows src[0..n) (in that order) to the tape and returns
   * the first new row. An engine offers it only when a row's forward depends on that row's
   * inputs alone (bitwise), so a memoizing caller (nn/memo-mlp.ts) may compute a repeated
   * input once and still backpropagate every occurrence exactly as if each had its own pass.
   */
  copyTapeRows?(src: Int32Array, n: number): number;

  dispose(): void;
}

/**
 * Parameter layout shared by every implementation, so flat vectors are interchangeable:
 * for each layer l (input → hidden[0] → … → output): W_l row-major [fanIn × fanOut], then
 * b_l [fanOut].
 */
export function layerSizes(spec: MlpSpec): number[] {
  return [spec.inputDim, ...spec.hidden, spec.outputDim];
}

export function countParams(spec: MlpSpec): number {
  const s = layerSizes(spec);
  let n = 0;
  for (let l = 0; l + 1 < s.length; l++) n += s[l] * s[l + 1] + s[l + 1];
  return n;
}

/** PyTorch's default nn.Linear init (weights and biases U(±1/√fanIn)), in the shared layout. */
export function initParams(spec: MlpSpec, rng: { uniform(): number }): Float32Array {
  const s = layerSizes(spec);
  const p = new Float32Array(countParams(spec));
  let o = 0;
  for (let l = 0; l + 1 < s.length; l++) {
    const bound = 1 / Math.sqrt(s[l]);
    const n = s[l] * s[l + 1] + s[l + 1];
    for (let i = 0; i < n; i++) p[o + i] = (2 * rng.uniform() - 1) * bound;
    o += n;
  }
  return p;
}
