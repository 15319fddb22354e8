/**
 * The JS-side optimizer: Adam / AdamW with torch's bias correction, on plain arrays. The LM
 * fine-tuning optimizer (finetune/tf-adam.ts: tfjs variables, parameter groups, clipping)
 * and the scalar log Z of the benchmark GFlowNets (ScalarAdam) both step through `adamStep`.
 * The benchmark MLP's engines keep their own Adam next to their parameters: the fused
 * wasm kernel's (asm/) runs in wasm SIMD over its flat buffer for speed, the tfjs engine's
 * in tf ops, the float64 reference's in nn/reference-mlp.ts (the three agree by test).
 */

export interface AdamOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty added to the gradient (Adam) or decoupled decay of the weights (AdamW) */
  weightDecay: number;
  decoupled: boolean;
}

export const ADAM_DEFAULTS: AdamOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false };

/**
 * One Adam / AdamW step in place: p, its moments m and v, step count t (1 for the first
 * step), learning rate lr; the gradient g is scaled by `gScale` first (gradient clipping).
 */
export function adamStep(
  p: Float32Array | Float64Array,
  g: ArrayLike<number>,
  m: Float32Array | Float64Array,
  v: Float32Array | Float64Array,
  t: number,
  lr: number,
  o: AdamOptions,
  gScale = 1,
): void {
  const { beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled } = o;
  const c1 = 1 - b1 ** t,
    c2 = 1 - b2 ** t;
  for (let i = 0; i < p.length; i++) {
    let gi = g[i] * gScale;
    if (wd > 0 && !decoupled) gi += wd * p[i];
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    if (wd > 0 && decoupled) p[i] -= lr * wd * p[i];
    p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
  }
}

/** Adam for a handful of scalars kept in JS (log Z, ...). */
export class ScalarAdam {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private t = 0;

  constructor(
    size: number,
    private readonly lr: number,
    private readonly o: AdamOptions = ADAM_DEFAULTS,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(params: Float64Array, grads: ArrayLike<number>): void {
    this.t++;
    adamStep(params, grads, this.m, this.v, this.t, this.lr, this.o);
  }
}

/** Linear warm-up, then cosine decay to `finalFraction` of the base rate at `total` steps. */
export function lrScaleAt(step: number, total: number, warmup: number, finalFraction: number): number {
  if (warmup > 0 && step < warmup) return (step + 1) / warmup;
  const p = total > warmup ? Math.min(1, (step - warmup) / (total - warmup)) : 1;
  return finalFraction + (1 - finalFraction) * 0.5 * (1 + Math.cos(Math.PI * p));
}
