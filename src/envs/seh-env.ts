import type { Env } from '../gfn/env.js';
import type { BackwardMappable } from '../metrics/logprob.js';
import { usage } from '../core/errors.js';
import {
  addBlock,
  forcedTerminal,
  leafBlocks,
  loadBlocks,
  removeBlock,
  MAX_BLOCKS,
  MIN_BLOCKS,
  NUM_BLOCKS,
  type BlockLibrary,
  type BlockState,
} from './seh-blocks.js';
import { SehChemistry } from './seh-chem.js';
import { SehProxy, sehLogReward } from './seh-proxy.js';

/** What scoring one block state gives: canonical SMILES, proxy score, RDKit fingerprint. */
export interface SehScore {
  smiles: string;
  proxy: number;
  fp: Uint8Array;
}

/** Block state → molecule → proxy, cached per state (the proxy depends on the stems, not only the molecule). */
export class SehScorer {
  private readonly cache = new Map<string, SehScore>();
  /** Distinct states scored (cache misses). */
  calls = 0;

  private constructor(
    readonly lib: BlockLibrary,
    private readonly chem: SehChemistry,
    private readonly proxy: SehProxy,
  ) {}

  static async create(): Promise<SehScorer> {
    const lib = loadBlocks();
    return new SehScorer(lib, await SehChemistry.create(lib), new SehProxy());
  }

  /** Checks a user-given state against the block library before building it. */
  validate(s: BlockState, where: string): void {
    const n = s.blockidxs.length;
    usage(n >= 1 && n <= MAX_BLOCKS, `${where}: blockidxs must hold 1 to ${MAX_BLOCKS} blocks`);
    for (const b of s.blockidxs)
      usage(Number.isInteger(b) && b >= 0 && b < NUM_BLOCKS, `${where}: block index ${b} is not in 0..${NUM_BLOCKS - 1}`);
    usage(s.jbonds.length === n - 1, `${where}: ${n} blocks need ${n - 1} jbonds (got ${s.jbonds.length})`);
    const atomOk = (b: number, a: number) =>
      Number.isInteger(b) && b >= 0 && b < n && Number.isInteger(a) && a >= 0 && a < this.lib.atoms[s.blockidxs[b]];
    for (const j of s.jbonds)
      usage(
        Array.isArray(j) && j.length === 4 && atomOk(j[0], j[2]) && atomOk(j[1], j[3]) && j[0] !== j[1],
        `${where}: bad jbond ${JSON.stringify(j)}`,
      );
    for (const st of s.stems)
      usage(Array.isArray(st) && st.length === 2 && atomOk(st[0], st[1]), `${where}: bad stem ${JSON.stringify(st)}`);
  }

  score(s: BlockState): SehScore {
    const key = JSON.stringify([s.blockidxs, s.jbonds, s.stems]);
    let r = this.cache.get(key);
    if (r) return r;
    this.calls++;
    const m = this.chem.build(s);
    if (!m) throw new Error('the empty state has no molecule');
    r = { smiles: m.smiles, proxy: this.proxy.score(m.atoms, m.bonds), fp: m.fp };
    this.cache.set(key, r);
    return r;
  }
}

/**
 * The sEH block MDP as a vectorized Env (docs/benchmarks.md "Molecules (sEH)"). Row layout:
 * [nBlocks, nJbonds, nStems, blockidxs × 8, jbonds × 7 × 4, stems × S × 2] with −1 padding,
 * S = the library's maximum number of open stems (34). Forward action stem·105 + block
 * (the original flat action minus one), exit last. A state with no stems or 8 blocks is
 * terminal in the original code; here its only allowed action is exit (probability 1, so
 * trajectory probabilities are the same). Exit is forbidden before 2 blocks. Backward
 * action k removes leaf block k (P_B uniform over the leaves, the original's parent count).
 *
 * Policy input (sparse one-hot): each block slot over {empty, 105 blocks}; each stem slot
 * and each end of each jbond over {empty} ∪ (block position × atom).
 */
export class SehEnv implements Env, BackwardMappable {
  readonly name = 'seh';
  readonly stateDim: number;
  readonly nActions: number;
  readonly exitAction: number;
  readonly nBackActions = MAX_BLOCKS;
  readonly maxSteps = MAX_BLOCKS + 1;
  readonly inputDim: number;
  readonly nnz: number;
  private readonly S: number;
  private readonly posAtoms: number; // one-hot width of a (block position, atom) slot
  private static readonly J0 = 3 + MAX_BLOCKS;
  private readonly S0: number;

  constructor(
    readonly scorer: SehScorer,
    readonly beta: number,
  ) {
    usage(Number.isFinite(beta) && beta > 0, `beta must be a positive number (got ${beta})`);
    const lib = scorer.lib;
    this.S = lib.maxStems;
    this.S0 = SehEnv.J0 + (MAX_BLOCKS - 1) * 4;
    this.stateDim = this.S0 + 2 * this.S;
    this.nActions = this.S * NUM_BLOCKS + 1;
    this.exitAction = this.nActions - 1;
    this.posAtoms = 1 + MAX_BLOCKS * lib.maxAtomsPerBlock;
    this.inputDim = MAX_BLOCKS * (NUM_BLOCKS + 1) + (this.S + 2 * (MAX_BLOCKS - 1)) * this.posAtoms;
    this.nnz = MAX_BLOCKS + this.S + 2 * (MAX_BLOCKS - 1);
  }

  static async create(beta: number): Promise<SehEnv> {
    return new SehEnv(await SehScorer.create(), beta);
  }

  get lib(): BlockLibrary {
    return this.scorer.lib;
  }

  decode(states: Int32Array, i: number): BlockState {
    const r = states.subarray(i * this.stateDim, (i + 1) * this.stateDim);
    const nb = r[0],
      nj = r[1],
      ns = r[2];
    const s: BlockState = { blockidxs: [], jbonds: [], stems: [] };
    for (let k = 0; k < nb; k++) s.blockidxs.push(r[3 + k]);
    for (let k = 0; k < nj; k++) {
      const o = SehEnv.J0 + 4 * k;
      s.jbonds.push([r[o], r[o + 1], r[o + 2], r[o + 3]]);
    }
    for (let k = 0; k < ns; k++) s.stems.push([r[this.S0 + 2 * k], r[this.S0 + 2 * k + 1]]);
    return s;
  }

  encodeState(s: BlockState, out: Int32Array, i: number): void {
    const r = out.subarray(i * this.stateDim, (i + 1) * this.stateDim);
    if (s.stems.length > this.S) throw new Error(`a state with ${s.stems.length} stems exceeds the action space (${this.S})`);
    r.fill(-1);
    r[0] = s.blockidxs.length;
    r[1] = s.jbonds.length;
    r[2] = s.stems.length;
    s.blockidxs.forEach((b, k) => (r[3 + k] = b));
    s.jbonds.forEach((j, k) => r.set(j, SehEnv.J0 + 4 * k));
    s.stems.forEach((st, k) => r.set(st, this.S0 + 2 * k));
  }

  initialStates(n: number): Int32Array {
    const out = new Int32Array(n * this.stateDim).fill(-1);
    for (let i = 0; i < n; i++) out.fill(0, i * this.stateDim, i * this.stateDim + 3);
    return out;
  }

  forwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    const A = this.nActions,
      D = this.stateDim;
    out.fill(0, 0, n * A);
    for (let i = 0; i < n; i++) {
      const nb = states[i * D],
        ns = states[i * D + 2];
      if (nb === 0) {
        out.fill(1, i * A, i * A + NUM_BLOCKS); // the empty state has one stem row
        continue;
      }
      if (ns === 0 || nb >= MAX_BLOCKS) {
        out[i * A + A - 1] = 1; // terminal in the original MDP: only exit
        continue;
      }
      out.fill(1, i * A, i * A + ns * NUM_BLOCKS);
      if (nb >= MIN_BLOCKS) out[i * A + A - 1] = 1;
    }
  }

  backwardMask(states: Int32Array, n: number, out: Uint8Array): void {
    const Ab = this.nBackActions;
    out.fill(0, 0, n * Ab);
    for (let i = 0; i < n; i++) for (const k of leafBlocks(this.decode(states, i))) out[i * Ab + k] = 1;
  }

  step(states: Int32Array, actions: Int32Array, n: number, out: Int32Array): void {
    for (let i = 0; i < n; i++) {
      const a = actions[i];
      if (a < 0 || a >= this.exitAction) throw new Error(`invalid seh action ${a}`);
      const s = this.decode(states, i);
      if (forcedTerminal(s)) throw new Error('seh: move from a terminal state');
      this.encodeState(addBlock(this.lib, s, a % NUM_BLOCKS, Math.floor(a / NUM_BLOCKS)), out, i);
    }
  }

  backwardStep(states: Int32Array, backActions: Int32Array, n: number, out: Int32Array): void {
    for (let i = 0; i < n; i++) this.encodeState(removeBlock(this.lib, this.decode(states, i), backActions[i]).parent, out, i);
  }

  /**
   * Learned P_B is not supported here: the block an addition creates is always the last one,
   * but which backward action undoes it depends on the state, not on the action alone. The
   * trainers only read this value with a learned P_B (the benchmark uses the uniform one).
   */
  backwardActionOf(_action: number): number {
    return -1;
  }

  forwardActionOf(child: Int32Array, i: number, j: number): number {
    const { stem, block } = removeBlock(this.lib, this.decode(child, i), j);
    return stem * NUM_BLOCKS + block;
  }

  isInitial(states: Int32Array, i: number): boolean {
    return states[i * this.stateDim] === 0;
  }

  /** log R = β · log(max(proxy, 0.1)/8). */
  logReward(states: Int32Array, n: number, out: Float64Array): void {
    for (let i = 0; i < n; i++) out[i] = sehLogReward(this.scorer.score(this.decode(states, i)).proxy, this.beta);
  }

  encode(states: Int32Array, n: number, out: Int32Array): void {
    const D = this.stateDim,
      K = this.nnz,
      P = this.posAtoms,
      MA = this.lib.maxAtomsPerBlock;
    const blockW = MAX_BLOCKS * (NUM_BLOCKS + 1);
    const slot = (b: number, a: number) => (b < 0 ? 0 : 1 + b * MA + a);
    for (let i = 0; i < n; i++) {
      const r = states.subarray(i * D, (i + 1) * D),
        o = out.subarray(i * K, (i + 1) * K);
      let k = 0;
      for (let b = 0; b < MAX_BLOCKS; b++) o[k++] = b * (NUM_BLOCKS + 1) + (r[3 + b] + 1);
      let base = blockW;
      for (let s = 0; s < this.S; s++, base += P) o[k++] = base + slot(r[this.S0 + 2 * s], r[this.S0 + 2 * s + 1]);
      for (let j = 0; j < MAX_BLOCKS - 1; j++) {
        const q = SehEnv.J0 + 4 * j;
        o[k++] = base + slot(r[q], r[q + 2]);
        base += P;
        o[k++] = base + slot(r[q + 1], r[q + 3]);
        base += P;
      }
    }
  }
}
