import { UsageError } from '../core/errors.js';

/** yargs turns "abc" into NaN for number options; every numeric flag goes through here. */
export function intArg(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (typeof v === 'boolean' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer${max < Number.MAX_SAFE_INTEGER ? ` in [${min}, ${max}]` : ` ≥ ${min}`} (got ${String(v)})`);
  }
  return n;
}

export function numArg(name: string, v: unknown, min = -Infinity, max = Infinity): number {
  const n = Number(v);
  if (typeof v === 'boolean' || v === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number${Number.isFinite(min) ? ` ≥ ${min}` : ''}${Number.isFinite(max) ? ` and ≤ ${max}` : ''} (got ${String(v)})`);
  }
  return n;
}

export function choiceArg<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (!choices.includes(v as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')} (got ${String(v)})`);
  return v as T;
}

export function listArg(name: string, v: unknown): number[] {
  const parts = String(v).split(',');
  return parts.map((p) => intArg(name, p.trim(), 1));
}
