/**
 * The loop every benchmark runner shares (hypergrid, bit sequences, molecules, MCMC on the
 * hypergrid): timed steps — wall and CPU time of the step only, so evaluation and
 * bookkeeping never count as training — the divergence check, and a record every
 * `evalEvery` iterations and at the last with the mean loss since the previous record.
 */

export interface LoopTiming {
  /** wall seconds of the steps */
  seconds: number;
  /** user + system CPU seconds of the steps */
  cpuSeconds: number;
}

export interface LoopHooks<R> {
  /** Before step `iteration` (0-based), untimed: progress bars. */
  before?(iteration: number): void;
  /** After each step, untimed: trackers, modes, exact marginals. */
  observe?(r: R, iteration: number): void;
  /** Every `evalEvery` iterations and at the last; `meanLoss` skips NaN losses (NaN when all were). */
  record?(iteration: number, meanLoss: number, trainSeconds: number): void;
}

export function runBenchLoop<R extends { loss: number }>(
  iterations: number,
  evalEvery: number,
  step: () => R,
  hooks: LoopHooks<R>,
): LoopTiming {
  let trainMs = 0,
    cpuMicros = 0,
    lossSum = 0,
    lossN = 0;
  for (let it = 1; it <= iterations; it++) {
    hooks.before?.(it - 1);
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    const r = step();
    const c = process.cpuUsage(c0);
    cpuMicros += c.user + c.system;
    trainMs += performance.now() - t0;
    if (r.loss === Infinity || r.loss === -Infinity) throw new Error(`loss became ${r.loss} at iteration ${it}`);
    if (!Number.isNaN(r.loss)) (lossSum += r.loss), lossN++;
    hooks.observe?.(r, it);
    if (hooks.record && (it % evalEvery === 0 || it === iterations)) {
      hooks.record(it, lossSum / lossN, trainMs / 1000);
      lossSum = lossN = 0;
    }
  }
  return { seconds: trainMs / 1000, cpuSeconds: cpuMicros / 1e6 };
}

/** Peak resident memory of this process so far, in MiB. */
export function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024;
}
