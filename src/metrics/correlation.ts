import { sampleCorrelation, sampleRankCorrelation } from 'simple-statistics';

/** Pearson correlation (simple-statistics), NaN when either side is constant or has non-finite values. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const [a, b] = finitePairs(x, y);
  if (a.length < 2) return NaN;
  return sampleCorrelation(a, b);
}

/** Spearman rank correlation (simple-statistics; ties get average ranks). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const [a, b] = finitePairs(x, y);
  if (a.length < 2) return NaN;
  return sampleRankCorrelation(a, b);
}

function finitePairs(x: ArrayLike<number>, y: ArrayLike<number>): [number[], number[]] {
  if (x.length !== y.length) throw new Error(`correlation of arrays of different lengths (${x.length}, ${y.length})`);
  const a: number[] = [],
    b: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (Number.isFinite(x[i]) && Number.isFinite(y[i])) {
      a.push(x[i]);
      b.push(y[i]);
    }
  }
  return [a, b];
}
