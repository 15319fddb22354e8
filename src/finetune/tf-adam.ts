import { tf } from '../core/backend.js';

export interface ParamGroup {
  vars: tf.Variable[];
  lr: number;
}

/**
 * Adam / AdamW (torch semantics, bias-corrected) over tfjs variables in groups with their own
 * learning rates, with global-norm gradient clipping. The moments live in plain arrays so a
 * checkpoint can save and restore them exactly.
 */
export class TfAdam {
  private t = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private readonly all: tf.Variable[];

  constructor(
    private readonly groups: ParamGroup[],
    private readonly opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean } = {},
  ) {
    this.all = groups.flatMap((g) => g.vars);
    this.m = this.all.map((v) => new Float32Array(v.size));
    this.v = this.all.map((v) => new Float32Array(v.size));
  }

  get variables(): tf.Variable[] {
    return this.all;
  }

  get steps(): number {
    return this.t;
  }

  /**
   * One step with learning rates scaled by `lrScale` (warm-up / cosine). Gradients are
   * clipped to global norm `clip` first. Returns the pre-clip norm; a non-finite norm
   * changes nothing (the caller stops the run).
   */
  step(grads: Map<tf.Variable, tf.Tensor>, lrScale: number, clip: number): number {
    const gs = this.all.map((v) => (grads.has(v) ? (grads.get(v)!.dataSync() as Float32Array) : null));
    let sq = 0;
    for (const g of gs) if (g) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
    const norm = Math.sqrt(sq);
    if (!Number.isFinite(norm)) return norm;
    const scale = clip > 0 && norm > clip ? clip / norm : 1;
    const b1 = this.opts.beta1 ?? 0.9, b2 = this.opts.beta2 ?? 0.999, eps = this.opts.eps ?? 1e-8, wd = this.opts.weightDecay ?? 0;
    this.t++;
    const c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    let k = 0;
    for (const group of this.groups) {
      const lr = group.lr * lrScale;
      for (const variable of group.vars) {
        const g = gs[k], m = this.m[k], v = this.v[k];
        k++;
        if (!g) continue;
        const p = Float32Array.from(variable.dataSync() as Float32Array);
        for (let i = 0; i < p.length; i++) {
          let gi = g[i] * scale;
          if (wd > 0 && !this.opts.decoupled) gi += wd * p[i];
          m[i] = b1 * m[i] + (1 - b1) * gi;
          v[i] = b2 * v[i] + (1 - b2) * gi * gi;
          if (wd > 0 && this.opts.decoupled) p[i] -= lr * wd * p[i];
          p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
        }
        variable.assign(tf.tensor(p, variable.shape));
      }
    }
    return norm;
  }

  getState(): { t: number; m: number[][]; v: number[][] } {
    return { t: this.t, m: this.m.map((a) => Array.from(a)), v: this.v.map((a) => Array.from(a)) };
  }

  setState(s: { t: number; m: number[][]; v: number[][] }): void {
    this.t = s.t;
    s.m.forEach((a, i) => this.m[i].set(a));
    s.v.forEach((a, i) => this.v[i].set(a));
  }
}

/** Linear warm-up, then cosine decay to `finalFraction` of the base rate at `total` steps. */
export function lrScaleAt(step: number, total: number, warmup: number, finalFraction: number): number {
  if (warmup > 0 && step < warmup) return (step + 1) / warmup;
  const p = total > warmup ? Math.min(1, (step - warmup) / (total - warmup)) : 1;
  return finalFraction + (1 - finalFraction) * 0.5 * (1 + Math.cos(Math.PI * p));
}
