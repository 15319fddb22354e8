import { tf } from '../core/backend.js';
import { ADAM_DEFAULTS, adamStep, type AdamOptions } from '../core/adam.js';

export interface ParamGroup {
  vars: tf.Variable[];
  lr: number;
}

/**
 * Adam / AdamW (core/adam.ts) over tfjs variables in groups with their own learning rates,
 * with global-norm gradient clipping. The moments live in plain arrays so a checkpoint can
 * save and restore them exactly.
 */
export class TfAdam {
  private t = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private readonly all: tf.Variable[];
  private readonly opts: AdamOptions;

  constructor(
    private readonly groups: ParamGroup[],
    opts: Partial<AdamOptions> = {},
  ) {
    this.opts = { ...ADAM_DEFAULTS, ...opts };
    this.all = groups.flatMap((g) => g.vars);
    this.m = this.all.map((v) => new Float32Array(v.size));
    this.v = this.all.map((v) => new Float32Array(v.size));
  }

  get variables(): tf.Variable[] {
    return this.all;
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
    this.t++;
    let k = 0;
    for (const group of this.groups) {
      const lr = group.lr * lrScale;
      for (const variable of group.vars) {
        const g = gs[k],
          m = this.m[k],
          v = this.v[k];
        k++;
        if (!g) continue;
        const p = Float32Array.from(variable.dataSync() as Float32Array);
        adamStep(p, g, m, v, this.t, lr, this.opts, scale);
        // assign keeps its own reference to the new values; without the tidy every step left
        // the new parameter tensor behind and the wasm heap filled up over long runs
        tf.tidy(() => variable.assign(tf.tensor(p, variable.shape)));
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
