import { SlotFillingEnv } from './slot-filling.js';
import { Rng } from '../core/rng.js';
import { usage } from '../core/errors.js';

export interface BitseqConfig {
  /** Sequence length in bits (docs/design.md §5: 120); a multiple of 8 (mode blocks) and of k. */
  n: number;
  /** Word length: the sequence has L = n/k slots, each filled with one k-bit word. */
  k: number;
  /** Number of modes (docs/design.md §5: 60). */
  nModes: number;
  /** log R(x) = −β · min_m d_H(x, m), not divided by n (as the reference code; β = 2 there). */
  beta: number;
  /** Seeds the mode set and the test set. */
  seed: number;
}

/** The 8-bit blocks modes are built from (docs/design.md §5). */
export const MODE_BLOCKS = ['00000000', '11111111', '11110000', '00001111', '00111100'] as const;

/**
 * Non-autoregressive bit sequences (docs/design.md §5). A state has L = n/k slots, each empty
 * (−1) or holding a k-bit word w ∈ [0, 2^k), written most significant bit first. Forward
 * action a = slot·2^k + word fills an empty slot; when every slot is filled, exit is the
 * only allowed action (so log P_F(exit | x) = 0 and the objects are the complete strings).
 * Backward action j empties slot j; P_B is uniform over the filled slots. Every object has
 * L! trajectories and a state with f filled slots has f parents.
 *
 * Encoding for the SparseMlp policy: one-hot per slot over {empty, 2^k words}, i.e.
 * L·(2^k + 1) inputs with L active — an MLP, not the reference's transformer.
 */
export class Bitseq extends SlotFillingEnv {
  readonly name = 'bitseq';
  readonly modeBits: Uint8Array;
  private readonly modePacked: Uint32Array;
  private readonly n32: number;

  constructor(readonly config: BitseqConfig) {
    const { n, k, nModes, beta } = config;
    usage(Number.isInteger(k) && k >= 1 && k <= 16, `k must be an integer in [1, 16] (got ${k})`);
    usage(Number.isInteger(n) && n >= 8 && n % 8 === 0, `n must be a positive multiple of 8 (got ${n})`);
    usage(n % k === 0, `k must divide n (got n=${n}, k=${k})`);
    usage(Number.isInteger(nModes) && nModes >= 1, `the number of modes must be an integer ≥ 1 (got ${nModes})`);
    usage(Number.isFinite(beta) && beta > 0, `beta must be a positive number (got ${beta})`);
    // slots of k bits, words 0..2^k−1; exit only once the string is complete
    super(n / k, 2 ** k, true, 5_000_000);
    this.n32 = Math.ceil(n / 32);
    this.modeBits = buildModes(config);
    this.modePacked = new Uint32Array(nModes * this.n32);
    for (let m = 0; m < nModes; m++) pack(this.modeBits.subarray(m * n, (m + 1) * n), this.modePacked, m * this.n32);
  }

  /** Words per slot (2^k). */
  get words(): number {
    return this.values;
  }

  get n(): number {
    return this.config.n;
  }

  logReward(states: Int32Array, count: number, out: Float64Array): void {
    const dist = new Int32Array(count);
    this.minDistances(states, count, dist);
    for (let i = 0; i < count; i++) out[i] = dist[i] < 0 ? -Infinity : -this.config.beta * dist[i];
  }

  /** min_m d_H(x_i, m) for complete states, −1 for incomplete ones. */
  minDistances(states: Int32Array, count: number, out: Int32Array): void {
    const packed = new Uint32Array(this.n32);
    for (let i = 0; i < count; i++) {
      if (!this.packState(states, i, packed)) {
        out[i] = -1;
        continue;
      }
      out[i] = this.nearest(packed).distance;
    }
  }

  /** Distances from complete state i to every mode, into out[nModes]. */
  modeDistances(states: Int32Array, i: number, out: Int32Array): void {
    const packed = new Uint32Array(this.n32);
    if (!this.packState(states, i, packed)) throw new Error('modeDistances needs a complete string');
    for (let m = 0; m < this.config.nModes; m++) out[m] = hamming(packed, this.modePacked, m * this.n32, this.n32);
  }

  /** Bits of complete state i (MSB first within each word). */
  bitsOf(states: Int32Array, i: number, out: Uint8Array): void {
    const L = this.slots,
      k = this.config.k;
    for (let j = 0; j < L; j++) {
      const w = states[i * L + j];
      if (w < 0) throw new Error('bitsOf needs a complete string');
      for (let b = 0; b < k; b++) out[j * k + b] = (w >> (k - 1 - b)) & 1;
    }
  }

  /** The complete state spelling `bits` [count × n]. */
  statesFromBits(bits: Uint8Array, count: number): Int32Array {
    const L = this.slots,
      k = this.config.k,
      n = this.config.n;
    const s = new Int32Array(count * L);
    for (let i = 0; i < count; i++) {
      for (let j = 0; j < L; j++) {
        let w = 0;
        for (let b = 0; b < k; b++) w = (w << 1) | bits[i * n + j * k + b];
        s[i * L + j] = w;
      }
    }
    return s;
  }

  private packState(states: Int32Array, i: number, packed: Uint32Array): boolean {
    const L = this.slots,
      k = this.config.k;
    packed.fill(0);
    for (let j = 0; j < L; j++) {
      const w = states[i * L + j];
      if (w < 0) return false;
      for (let b = 0; b < k; b++) {
        const p = j * k + b;
        if ((w >> (k - 1 - b)) & 1) packed[p >> 5] |= 1 << (p & 31);
      }
    }
    return true;
  }

  private nearest(packed: Uint32Array): { distance: number; mode: number } {
    let best = Infinity,
      mode = -1;
    for (let m = 0; m < this.config.nModes; m++) {
      const d = hamming(packed, this.modePacked, m * this.n32, this.n32);
      if (d < best) {
        best = d;
        mode = m;
      }
    }
    return { distance: best, mode };
  }
}

/** Modes: each a concatenation of n/8 blocks drawn uniformly (with replacement) from MODE_BLOCKS. */
function buildModes(c: BitseqConfig): Uint8Array {
  const rng = new Rng(c.seed);
  const out = new Uint8Array(c.nModes * c.n);
  for (let m = 0; m < c.nModes; m++) {
    for (let b = 0; b < c.n / 8; b++) {
      const block = MODE_BLOCKS[rng.int(MODE_BLOCKS.length)];
      for (let t = 0; t < 8; t++) out[m * c.n + b * 8 + t] = block.charCodeAt(t) - 48;
    }
  }
  return out;
}

function pack(bits: Uint8Array, out: Uint32Array, off: number): void {
  for (let p = 0; p < bits.length; p++) if (bits[p]) out[off + (p >> 5)] |= 1 << (p & 31);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

function hamming(a: Uint32Array, b: Uint32Array, off: number, n: number): number {
  let d = 0;
  for (let w = 0; w < n; w++) d += popcount(a[w] ^ b[off + w]);
  return d;
}

/**
 * The test set of docs/design.md §5: every mode, and for c = 1..n−1 one copy of it with c
 * distinct random bits flipped — nModes·n strings, as bits [count × n]. `modes` limits it
 * to the first few modes (a documented reduction for quick runs).
 */
export function bitseqTestSet(env: Bitseq, rng: Rng, modes = env.config.nModes): Uint8Array {
  const n = env.n;
  const out = new Uint8Array(modes * n * n);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  let row = 0;
  for (let m = 0; m < modes; m++) {
    const mode = env.modeBits.subarray(m * n, (m + 1) * n);
    for (let c = 0; c < n; c++, row++) {
      const x = out.subarray(row * n, (row + 1) * n);
      x.set(mode);
      // partial Fisher–Yates: the first c entries of perm are a uniform c-subset
      for (let i = 0; i < c; i++) {
        const j = i + rng.int(n - i);
        const t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        x[perm[i]] ^= 1;
      }
    }
  }
  return out;
}
