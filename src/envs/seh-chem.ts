/**
 * Molecule assembly and the proxy's atom table with RDKit-wasm (docs/benchmarks.md
 * "Molecules (sEH)"). chem.mol_from_frag concatenates the block molecules, adds one SINGLE
 * bond per jbond, removes one explicit H from bracket junction atoms and sanitizes. We write
 * the same molecule as one SMILES: the block SMILES joined by '.', each jbond an explicit
 * single ring-closure bond `-%NN` right after its two atom tokens. RDKit numbers atoms in
 * textual order, so the atom order is the assembly order (block by block, each in its SMILES
 * order), which the network and the stem-mask feature need.
 *
 * RDKit-wasm exposes no hybridization getter, so aromaticity, hybridization, H counts and
 * bond types are read with one-atom/one-bond SMARTS queries (`[^2]` = SP2, `[H1]`, `*:*`, …).
 */
import { loadRDKit, type RDKitModule } from './molecule.js';
import { slicesOf, smilesAtomSpans, type BlockLibrary, type BlockState } from './seh-blocks.js';

/** Per atom: [Z, aromatic 0/1, hybridization 'SP' | 'SP2' | 'SP3' | 'OTHER', total Hs, stem 0/1]. */
export type AtomRow = [number, number, string, number, number];
/** [i, j, type] with type 0 SINGLE, 1 DOUBLE, 2 TRIPLE, 3 AROMATIC. */
export type BondRow = [number, number, number];

export interface SehMol {
  smiles: string;
  atoms: AtomRow[];
  bonds: BondRow[];
  /** RDKFingerprint (defaults: paths 1–7, 2048 bits) as bytes. */
  fp: Uint8Array;
}

interface QMol {
  delete(): void;
}
interface Mol {
  is_valid(): boolean;
  get_smiles(): string;
  get_json(): string;
  get_substruct_matches(q: QMol, details?: string): string;
  get_rdkit_fp_as_uint8array(details?: string): Uint8Array;
  delete(): void;
}
interface RD {
  get_mol(s: string): Mol | null;
  get_qmol(s: string): QMol | null;
}

/** One explicit H fewer on a bracket atom ([nH] → [n], [NH2+] → [NH+]); other atoms unchanged. */
export function dropOneH(token: string): string {
  if (!token.startsWith('[')) return token;
  return token.replace(/^(\[\d*[A-Za-z][a-z]?)H(\d*)/, (_, head: string, n: string) => {
    const k = n === '' ? 1 : Number(n);
    return k <= 1 ? head : k === 2 ? `${head}H` : `${head}H${k - 1}`;
  });
}

/** The assembled molecule as one SMILES in assembly atom order ('' for the empty state). */
export function assemblySmiles(lib: BlockLibrary, s: BlockState): string {
  const parts = s.blockidxs.map((b) => {
    const smi = lib.smiles[b];
    return { smi, spans: smilesAtomSpans(smi), suffix: new Map<number, string>(), dropH: new Map<number, number>() };
  });
  s.jbonds.forEach(([A, B, a, b], j) => {
    const label = `-%${10 + j}`;
    for (const [k, atom] of [
      [A, a],
      [B, b],
    ]) {
      const p = parts[k];
      p.suffix.set(atom, (p.suffix.get(atom) ?? '') + label);
      p.dropH.set(atom, (p.dropH.get(atom) ?? 0) + 1);
    }
  });
  return parts
    .map((p) => {
      let out = '',
        last = 0;
      p.spans.forEach(([st, en], i) => {
        let tok = p.smi.slice(st, en);
        for (let d = p.dropH.get(i) ?? 0; d > 0; d--) tok = dropOneH(tok);
        out += p.smi.slice(last, st) + tok + (p.suffix.get(i) ?? '');
        last = en;
      });
      return out + p.smi.slice(last);
    })
    .join('.');
}

const ATOM_QUERIES = {
  aromatic: '[a]',
  sp: '[^1]',
  sp2: '[^2]',
  sp3: '[^3]',
  h1: '[*H1]',
  h2: '[*H2]',
  h3: '[*H3]',
  h4: '[*H4]',
} as const;
const BOND_QUERIES = ['*-*', '*=*', '*#*', '*:*'] as const;

/** Assembles block states and reads the proxy's input tables; RDKit query molecules are built once. */
export class SehChemistry {
  private readonly atomQ: Record<keyof typeof ATOM_QUERIES, QMol>;
  private readonly bondQ: QMol[];

  private constructor(
    private readonly rd: RD,
    readonly lib: BlockLibrary,
  ) {
    const q = (s: string) => {
      const m = rd.get_qmol(s);
      if (!m) throw new Error(`RDKit rejected the SMARTS ${s}`);
      return m;
    };
    this.atomQ = Object.fromEntries(Object.entries(ATOM_QUERIES).map(([k, v]) => [k, q(v)])) as SehChemistry['atomQ'];
    this.bondQ = BOND_QUERIES.map(q);
  }

  static async create(lib: BlockLibrary): Promise<SehChemistry> {
    return new SehChemistry((await loadRDKit()) as unknown as RDKitModule & RD, lib);
  }

  private matches(mol: Mol, q: QMol): number[][] {
    const r = JSON.parse(mol.get_substruct_matches(q, JSON.stringify({ maxMatches: 100000 }))) as
      | { atoms: number[] }[]
      | Record<string, never>;
    return Array.isArray(r) ? r.map((m) => m.atoms) : [];
  }

  /** null for the empty state (no molecule); throws if RDKit cannot sanitize the assembly. */
  build(s: BlockState): SehMol | null {
    if (s.blockidxs.length === 0) return null;
    const smi = assemblySmiles(this.lib, s);
    const mol = this.rd.get_mol(smi);
    if (!mol || !mol.is_valid()) {
      mol?.delete();
      throw new Error(`RDKit cannot sanitize the assembled molecule ${smi}`);
    }
    try {
      const json = JSON.parse(mol.get_json()) as { defaults: { atom: { z: number } }; molecules: { atoms: { z?: number }[] }[] };
      const zs = json.molecules[0].atoms.map((a) => a.z ?? json.defaults.atom.z);
      const flag = (q: QMol) => {
        const f = new Uint8Array(zs.length);
        for (const [i] of this.matches(mol, q)) f[i] = 1;
        return f;
      };
      const arom = flag(this.atomQ.aromatic),
        sp = flag(this.atomQ.sp),
        sp2 = flag(this.atomQ.sp2),
        sp3 = flag(this.atomQ.sp3);
      const hs = [flag(this.atomQ.h1), flag(this.atomQ.h2), flag(this.atomQ.h3), flag(this.atomQ.h4)];
      const slices = slicesOf(this.lib, s);
      const stem = new Uint8Array(zs.length);
      for (const [b, a] of s.stems) stem[slices[b] + a] = 1;
      const atoms: AtomRow[] = zs.map((z, i) => [
        z,
        arom[i],
        sp[i] ? 'SP' : sp2[i] ? 'SP2' : sp3[i] ? 'SP3' : 'OTHER',
        hs.findIndex((h) => h[i] === 1) + 1,
        stem[i],
      ]);
      const bonds: BondRow[] = [];
      this.bondQ.forEach((q, type) => {
        for (const [i, j] of this.matches(mol, q)) bonds.push([Math.min(i, j), Math.max(i, j), type]);
      });
      bonds.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      return { smiles: mol.get_smiles(), atoms, bonds, fp: mol.get_rdkit_fp_as_uint8array() };
    } finally {
      mol.delete();
    }
  }
}
