import { SlotFillingEnv } from './slot-filling.js';
import { usage } from '../core/errors.js';
import { packFingerprint } from '../metrics/modes.js';

/** The subset of @rdkit/rdkit's MinimalLib API used here. */
interface RDKitMol {
  is_valid(): boolean;
  get_smiles(): string;
  get_descriptors(): string;
  get_morgan_fp_as_uint8array(details: string): Uint8Array;
  delete(): void;
}
export interface RDKitModule {
  get_mol(smiles: string): RDKitMol | null;
  version(): string;
}

let rdkit: Promise<RDKitModule> | undefined;
/** Loads the RDKit MinimalLib wasm once per process (it ships inside the npm package: offline). */
export function loadRDKit(): Promise<RDKitModule> {
  if (!rdkit) {
    rdkit = import('@rdkit/rdkit').then(async (m) => {
      const init = (m as unknown as { default: () => Promise<RDKitModule> }).default;
      return init();
    });
  }
  return rdkit;
}

/**
 * Substituents, written so that their first atom bonds to the scaffold. Rings inside a
 * substituent use ring-closure label 9, which the scaffold never holds open.
 */
export const FRAGMENTS = [
  'C',
  'CC',
  'O',
  'OC',
  'N',
  'N(C)C',
  'F',
  'Cl',
  'Br',
  'C(=O)O',
  'C(=O)N',
  'C#N',
  'S(=O)(=O)N',
  'c9ccccc9',
  'C9CCNCC9',
  'C(F)(F)F',
  'OC(=O)C',
  'NC(=O)C',
] as const;

/** Naphthalene's eight C–H positions in SMILES order: 1, 2, 3, 4 | 5, 6, 7, 8 (IUPAC 1,2,3,4,5,6,7,8 up to symmetry). */
export const SITES = 8;

/**
 * Descriptor-profile reward (documented in docs/benchmarks.md; an open alternative to the
 * sEH proxy of src/envs/seh-*.ts): r(x) = exp(−½ Σ_i ((d_i(x) − μ_i)/σ_i)²) ∈ (0, 1] over
 * RDKit descriptors — a smooth "drug-like window" whose peak many decorations can reach.
 */
export const PROFILE: readonly { key: string; mu: number; sigma: number }[] = [
  { key: 'exactmw', mu: 350, sigma: 50 },
  { key: 'CrippenClogP', mu: 2.5, sigma: 1 },
  { key: 'tpsa', mu: 60, sigma: 20 },
  { key: 'NumRotatableBonds', mu: 3, sigma: 1.5 },
];

/** log r = −½ Σ ((d − μ)/σ)² from an RDKit descriptor object. */
export function profileLogReward(desc: Record<string, number>): number {
  let pen = 0;
  for (const { key, mu, sigma } of PROFILE) {
    const z = (desc[key] - mu) / sigma;
    pen += z * z;
  }
  return -0.5 * pen;
}

export interface MoleculeConfig {
  /** R = r^β (docs/design.md §5: R = (reward/scale)^β with scale 1, since r ≤ 1). */
  beta: number;
  /** Use the first `sites` scaffold positions (others stay C–H); 8 for the benchmark. */
  sites: number;
  /** Use the first `fragments` substituents of FRAGMENTS; all 18 for the benchmark. */
  fragments: number;
}

export const MOLECULE_DEFAULTS: MoleculeConfig = { beta: 4, sites: SITES, fragments: FRAGMENTS.length };

/** What one object costs to score: canonical SMILES, log r, Morgan fingerprint. */
export interface MolInfo {
  smiles: string;
  logr: number;
  fp: Uint32Array;
  valid: boolean;
}

/** Floor for log r when RDKit rejects a molecule (never happens with these fragments; counted). */
const INVALID_LOGR = -50;

/**
 * Fragment-decoration DAG on a naphthalene scaffold. A state holds, for each of the S
 * sites, −1 (hydrogen) or a fragment index. Forward action site·F + f attaches fragment f
 * at an empty site; exit (always allowed) ends with the current molecule, so every state
 * is an object, including bare naphthalene. Backward action j removes the fragment at
 * site j; P_B is uniform over the filled sites, so a molecule with f substituents has f
 * parents and f! construction orders. Symmetric decorations (naphthalene has a D2h
 * symmetry) are distinct states of the DAG with the same molecule and reward.
 *
 * Encoding for the SparseMlp policy: one-hot per site over {H, F fragments}.
 */
export class MoleculeEnv extends SlotFillingEnv {
  readonly name = 'molecules';
  private readonly cache = new Map<string, MolInfo>();
  invalidCount = 0;
  /** Distinct molecules scored with RDKit (cache misses). */
  rdkitCalls = 0;

  private constructor(
    readonly config: MoleculeConfig,
    private readonly rd: RDKitModule,
  ) {
    const { sites, fragments, beta } = config;
    usage(Number.isInteger(sites) && sites >= 1 && sites <= SITES, `sites must be an integer in [1, ${SITES}] (got ${sites})`);
    usage(
      Number.isInteger(fragments) && fragments >= 1 && fragments <= FRAGMENTS.length,
      `fragments must be in [1, ${FRAGMENTS.length}] (got ${fragments})`,
    );
    usage(Number.isFinite(beta) && beta > 0, `beta must be a positive number (got ${beta})`);
    // one slot per substitution site, a fragment per slot; exit is always allowed
    super(sites, fragments, false, 1_000_000);
  }

  static async create(config: MoleculeConfig): Promise<MoleculeEnv> {
    return new MoleculeEnv(config, await loadRDKit());
  }

  /** SMILES of state i (not canonical): naphthalene c1ccc2ccccc2c1 with substituents as branches. */
  smilesOf(states: Int32Array, i: number): string {
    const S = this.stateDim;
    const sub = (j: number) => (j < S && states[i * S + j] >= 0 ? `(${FRAGMENTS[states[i * S + j]]})` : '');
    return `c1${sub(0)}c${sub(1)}c${sub(2)}c2c${sub(3)}c${sub(4)}c${sub(5)}c${sub(6)}c2c1${sub(7)}`;
  }

  /** Scores state i with RDKit (cached per state). */
  info(states: Int32Array, i: number): MolInfo {
    const key = this.smilesOf(states, i);
    let m = this.cache.get(key);
    if (m) return m;
    this.rdkitCalls++;
    const mol = this.rd.get_mol(key);
    if (!mol || !mol.is_valid()) {
      mol?.delete();
      this.invalidCount++;
      m = { smiles: key, logr: INVALID_LOGR, fp: new Uint32Array(64), valid: false };
    } else {
      const desc = JSON.parse(mol.get_descriptors()) as Record<string, number>;
      const fp = packFingerprint(mol.get_morgan_fp_as_uint8array(JSON.stringify({ radius: 2, nBits: 2048 })));
      m = { smiles: mol.get_smiles(), logr: profileLogReward(desc), fp, valid: true };
      mol.delete();
    }
    this.cache.set(key, m);
    return m;
  }

  /** log R = β·log r (every state is an object). */
  logReward(states: Int32Array, n: number, out: Float64Array): void {
    for (let i = 0; i < n; i++) out[i] = this.config.beta * this.info(states, i).logr;
  }
}
