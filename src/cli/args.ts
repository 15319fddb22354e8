import { UsageError } from '../core/errors.js';

/** How the user typed the flag: `-n` for one-letter options, `--name` otherwise. */
export const flag = (name: string) => (name.length === 1 ? `-${name}` : `--${name}`);

/** yargs turns "abc" into NaN for number options; every numeric flag goes through here. */
export function intArg(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (typeof v === 'boolean' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag(name)} must be an integer${max < Number.MAX_SAFE_INTEGER ? ` in [${min}, ${max}]` : ` ≥ ${min}`} (got ${String(v)})`,
    );
  }
  return n;
}

/** A finite number in [min, max] (or (min, max] with `exclusiveMin`, e.g. "> 0"). */
export function numArg(name: string, v: unknown, min = -Infinity, max = Infinity, opts: { exclusiveMin?: boolean } = {}): number {
  const n = Number(v);
  if (typeof v === 'boolean' || v === '' || !Number.isFinite(n) || n < min || (opts.exclusiveMin && n === min) || n > max) {
    const lo = Number.isFinite(min) ? ` ${opts.exclusiveMin ? '>' : '≥'} ${min}` : '';
    throw new UsageError(
      `${flag(name)} must be a number${lo}${Number.isFinite(max) ? `${lo ? ' and' : ''} ≤ ${max}` : ''} (got ${String(v)})`,
    );
  }
  return n;
}

export function choiceArg<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (!choices.includes(v as T)) throw new UsageError(`${flag(name)} must be one of ${choices.join(', ')} (got ${String(v)})`);
  return v as T;
}

export function listArg(name: string, v: unknown): number[] {
  const parts = String(v).split(',');
  return parts.map((p) => intArg(name, p.trim(), 1));
}
