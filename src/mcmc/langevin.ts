import { Rng } from '../core/rng.js';

/**
 * A continuous target π on R^d given by its log-density (up to a constant) and gradient,
 * evaluated for n points at once: x [n × d] → logp [n], grad [n × d].
 */
export interface ContinuousTarget {
  readonly dim: number;
  logDensityAndGrad(x: Float64Array, n: number, logp: Float64Array, grad: Float64Array): void;
}

export interface LangevinStats {
  steps: number;
  /** MALA: accepted proposals / proposals; ULA: 1. */
  acceptanceRate: number;
  /** Target evaluations (log-density + gradient), counting the initial one per chain. */
  evaluations: number;
}

/**
 * Unadjusted Langevin algorithm: the Euler–Maruyama discretization of the Langevin
 * diffusion dX = ∇log π(X) dt + √2 dW,
 *   x ← x + h ∇log π(x) + √(2h) ξ,  ξ ~ N(0, I),
 * for every chain (rows of x, updated in place). Biased at fixed h: its stationary law is
 * not π (for π = N(0,1) it is N(0, 1/(1 − h/2))), and k steps approximate Law(X_{kh}).
 */
export function ula(target: ContinuousTarget, x: Float64Array, chains: number, h: number, steps: number, rng: Rng): LangevinStats {
  const d = target.dim;
  const logp = new Float64Array(chains);
  const grad = new Float64Array(chains * d);
  const s = Math.sqrt(2 * h);
  for (let k = 0; k < steps; k++) {
    target.logDensityAndGrad(x, chains, logp, grad);
    for (let i = 0; i < chains * d; i++) x[i] += h * grad[i] + s * rng.normal();
  }
  return { steps, acceptanceRate: 1, evaluations: chains * steps };
}

/**
 * Metropolis-adjusted Langevin: the ULA move is a proposal y = x + h∇log π(x) + √(2h)ξ,
 * accepted with probability min(1, π(y) q(x|y) / (π(x) q(y|x))), where
 * log q(y|x) = −|y − x − h∇log π(x)|² / (4h) + const. The correction makes π exactly
 * stationary for any h.
 */
export function mala(target: ContinuousTarget, x: Float64Array, chains: number, h: number, steps: number, rng: Rng): LangevinStats {
  const d = target.dim;
  const logp = new Float64Array(chains);
  const grad = new Float64Array(chains * d);
  const y = new Float64Array(chains * d);
  const logpY = new Float64Array(chains);
  const gradY = new Float64Array(chains * d);
  const s = Math.sqrt(2 * h);
  target.logDensityAndGrad(x, chains, logp, grad);
  let accepted = 0;
  for (let k = 0; k < steps; k++) {
    for (let i = 0; i < chains * d; i++) y[i] = x[i] + h * grad[i] + s * rng.normal();
    target.logDensityAndGrad(y, chains, logpY, gradY);
    for (let c = 0; c < chains; c++) {
      let fwd = 0,
        bwd = 0; // |y − x − h g(x)|², |x − y − h g(y)|²
      for (let j = c * d; j < (c + 1) * d; j++) {
        const a = y[j] - x[j] - h * grad[j];
        const b = x[j] - y[j] - h * gradY[j];
        fwd += a * a;
        bwd += b * b;
      }
      const logA = logpY[c] - logp[c] + (fwd - bwd) / (4 * h);
      if (logA >= 0 || rng.uniform() < Math.exp(logA)) {
        for (let j = c * d; j < (c + 1) * d; j++) {
          x[j] = y[j];
          grad[j] = gradY[j];
        }
        logp[c] = logpY[c];
        accepted++;
      }
    }
  }
  return { steps, acceptanceRate: steps > 0 ? accepted / (steps * chains) : 1, evaluations: chains * (steps + 1) };
}

/** N(μ, σ²I) in d dimensions: log π = −|x − μ|²/(2σ²), ∇ = −(x − μ)/σ². */
export function gaussianTarget(dim: number, mean = 0, variance = 1): ContinuousTarget {
  return {
    dim,
    logDensityAndGrad(x, n, logp, grad) {
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let j = c * dim; j < (c + 1) * dim; j++) {
          const z = x[j] - mean;
          s += z * z;
          grad[j] = -z / variance;
        }
        logp[c] = -s / (2 * variance);
      }
    },
  };
}

export interface LangevinCheck {
  dim: number;
  chains: number;
  step: number;
  steps: number;
  /** the Langevin diffusion of N(0, I) from x0 (Ornstein–Uhlenbeck) at t = steps·h: N(x0 e^{−t}, 1 − e^{−2t}) */
  exact: { mean: number; variance: number };
  /** ULA on this target is the AR(1) x ← (1 − h)x + √(2h)ξ: N(x0 (1−h)^k, (1 − (1−h)^{2k}) / (1 − h/2)) */
  ulaExact: { mean: number; variance: number };
  ula: { mean: number; variance: number };
  mala: { mean: number; variance: number; acceptanceRate: number };
}

/**
 * `flowtune verify langevin`: ULA and MALA on the standard Gaussian in `dim` dimensions from
 * x0 = 3, pooled sample mean / variance of every coordinate of every chain after `steps`
 * steps of size h, against the closed-form laws above. ULA matches its own AR(1) law and so
 * carries the step-size bias; MALA's correction removes it at equilibrium.
 */
export function langevinCheck(o: { dim: number; chains: number; step: number; steps: number; seed: number }): LangevinCheck {
  const { dim, chains, step: h, steps: k } = o;
  const x0 = 3,
    t = h * k;
  const target = gaussianTarget(dim);
  const moments = (x: Float64Array) => {
    let m = 0;
    for (const v of x) m += v / x.length;
    let s = 0;
    for (const v of x) s += (v - m) * (v - m);
    return { mean: m, variance: s / (x.length - 1) };
  };
  const xu = new Float64Array(chains * dim).fill(x0);
  ula(target, xu, chains, h, k, new Rng(o.seed));
  const xm = new Float64Array(chains * dim).fill(x0);
  const st = mala(target, xm, chains, h, k, new Rng(o.seed + 1));
  return {
    dim,
    chains,
    step: h,
    steps: k,
    exact: { mean: x0 * Math.exp(-t), variance: 1 - Math.exp(-2 * t) },
    ulaExact: { mean: x0 * (1 - h) ** k, variance: (1 - (1 - h) ** (2 * k)) / (1 - h / 2) },
    ula: moments(xu),
    mala: { ...moments(xm), acceptanceRate: st.acceptanceRate },
  };
}
