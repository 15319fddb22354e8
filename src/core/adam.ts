/** Adam for a handful of scalars kept in JS (log Z, ...), with torch's bias correction. */
export class ScalarAdam {
  private m: Float64Array;
  private v: Float64Array;
  private t = 0;

  constructor(size: number, private lr: number, private beta1 = 0.9, private beta2 = 0.999, private eps = 1e-8) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(params: Float64Array, grads: ArrayLike<number>): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t, c2 = 1 - this.beta2 ** this.t;
    for (let i = 0; i < params.length; i++) {
      this.m[i] = this.beta1 * this.m[i] + (1 - this.beta1) * grads[i];
      this.v[i] = this.beta2 * this.v[i] + (1 - this.beta2) * grads[i] * grads[i];
      params[i] -= (this.lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + this.eps);
    }
  }
}
