/** Population count of a 32-bit word. */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Packs a fingerprint given as bytes of 8 bits (RDKit's get_morgan_fp_as_uint8array) into 32-bit words. */
export function packFingerprint(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(bytes.length / 4));
  for (let i = 0; i < bytes.length; i++) out[i >> 2] |= bytes[i] << (8 * (i & 3));
  return out;
}

/** Tanimoto similarity |a ∧ b| / |a ∨ b| of two bit fingerprints (1 when both are empty). */
export function tanimoto(a: Uint32Array, b: Uint32Array): number {
  let inter = 0,
    union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += popcount32(a[i] & b[i]);
    union += popcount32(a[i] | b[i]);
  }
  return union === 0 ? 1 : inter / union;
}

/**
 * Greedy Tanimoto-separated mode set (docs/design.md §5, molecules): samples are offered in the
 * order they were drawn; one whose reward is above the threshold becomes a new mode when
 * its similarity to every mode found so far is below `maxSimilarity` (0.7).
 */
export class TanimotoModes {
  readonly modes: { key: string; fp: Uint32Array; reward: number }[] = [];

  constructor(
    readonly rewardThreshold: number,
    readonly maxSimilarity = 0.7,
  ) {}

  offer(key: string, fp: Uint32Array, reward: number): boolean {
    if (!(reward >= this.rewardThreshold)) return false;
    for (const m of this.modes) if (m.key === key || tanimoto(m.fp, fp) >= this.maxSimilarity) return false;
    this.modes.push({ key, fp, reward });
    return true;
  }

  get count(): number {
    return this.modes.length;
  }
}
