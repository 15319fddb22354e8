/**
 * Statistics of a comparison over seeds: mean and sample standard deviation across seeds,
 * and the exact two-sided sign test used to compare two methods item by item.
 */
import { logSumExp } from '../core/math.js';

export function mean(xs: readonly number[]): number {
  return xs.reduce((s, v) => s + v, 0) / xs.length;
}

/** Sample standard deviation (n − 1); null for fewer than two values. */
export function sampleSd(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, v) => s + (v - m) * (v - m), 0) / (xs.length - 1));
}

/**
 * Exact two-sided sign test: under H0 each of the n = wins + losses untied pairs favours
 * either side with probability ½; p = min(1, 2·P(Bin(n, ½) ≤ min(wins, losses))). With one
 * seed and 0/1 outcomes this is the exact McNemar test (n = the discordant items).
 */
export function signTestP(wins: number, losses: number): number {
  const n = wins + losses;
  if (n === 0) return 1;
  const k = Math.min(wins, losses);
  const terms: number[] = [];
  let logC = 0; // log C(n, j)
  for (let j = 0; j <= k; j++) {
    terms.push(logC - n * Math.LN2);
    logC += Math.log(n - j) - Math.log(j + 1);
  }
  return Math.min(1, 2 * Math.exp(logSumExp(terms)));
}

export interface PairedItems {
  /** mean over items of a − b (the difference of the two accuracies) */
  diff: number;
  wins: number;
  losses: number;
  ties: number;
  p: number;
}

/** Sign test on paired per-item scores (e.g. majority-vote correctness averaged over seeds). */
export function pairedSignTest(a: readonly number[], b: readonly number[]): PairedItems {
  if (a.length !== b.length) throw new Error(`paired test on ${a.length} vs ${b.length} items`);
  let wins = 0,
    losses = 0,
    ties = 0,
    d = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] - b[i];
    // scores are averages of 0/1 over the same number of seeds: compare with a tolerance
    if (a[i] > b[i] + 1e-9) wins++;
    else if (b[i] > a[i] + 1e-9) losses++;
    else ties++;
  }
  return { diff: d / a.length, wins, losses, ties, p: signTestP(wins, losses) };
}
