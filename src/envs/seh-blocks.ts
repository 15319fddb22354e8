/**
 * The block MDP of the sEH molecule benchmark (Bengio et al. 2021, as used by Tiapkin et al.
 * 2024; docs/benchmarks.md "Molecules (sEH)"): 105 building blocks from data/seh/
 * blocks_PDB_105.json, a state = (blockidxs, jbonds, stems), a block is added at an open stem.
 * This file holds the plain-object semantics; src/envs/seh-env.ts packs them into Env rows.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';

/** data/seh/ of the repository (dist/src/envs → ../../../data/seh). */
export const SEH_DATA_DIR = fileURLToPath(new URL('../../../data/seh/', import.meta.url));

export const NUM_BLOCKS = 105;
export const MIN_BLOCKS = 2;
export const MAX_BLOCKS = 8;

export interface BlockLibrary {
  smiles: string[];
  /** block_r: r[0] is the atom bonding to the molecule, r[1..] the stems the block brings. */
  r: number[][];
  /** Heavy atoms per block (in its SMILES order). */
  atoms: number[];
  /** Largest number of open stems a state can hold (bounds the action space). */
  maxStems: number;
  maxAtomsPerBlock: number;
}

/** Heavy atoms of a block SMILES: bracket atoms, Cl, Br and the one-letter organic subset. */
export function countSmilesAtoms(smi: string): number {
  return smilesAtomSpans(smi).length;
}

/** [start, end) of every atom token of a SMILES string, in textual (= RDKit parse) order. */
export function smilesAtomSpans(smi: string): [number, number][] {
  const spans: [number, number][] = [];
  for (let i = 0; i < smi.length; ) {
    const c = smi[i];
    if (c === '[') {
      const j = smi.indexOf(']', i);
      if (j < 0) throw new Error(`unclosed bracket in ${smi}`);
      spans.push([i, j + 1]);
      i = j + 1;
    } else if (smi.startsWith('Cl', i) || smi.startsWith('Br', i)) {
      spans.push([i, i + 2]);
      i += 2;
    } else if ('BCNOPSFIbcnops'.includes(c)) {
      spans.push([i, i + 1]);
      i++;
    } else i++;
  }
  return spans;
}

let library: BlockLibrary | undefined;
export function loadBlocks(file = SEH_DATA_DIR + 'blocks_PDB_105.json'): BlockLibrary {
  if (library && file === SEH_DATA_DIR + 'blocks_PDB_105.json') return library;
  let d: { block_smi: Record<string, string>; block_r: Record<string, number[]> };
  try {
    d = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(`${file}: cannot read the block library`);
  }
  const smiles: string[] = [],
    r: number[][] = [];
  for (let k = 0; k < NUM_BLOCKS; k++) {
    smiles.push(d.block_smi[String(k)]);
    r.push(d.block_r[String(k)]);
  }
  const atoms = smiles.map(countSmilesAtoms);
  // first block opens all its r atoms; each later block adds len(r) − 1 and closes one
  const first = Math.max(...r.map((x) => x.length));
  const per = Math.max(...r.map((x) => x.length - 2));
  const lib = { smiles, r, atoms, maxStems: first + (MAX_BLOCKS - 1) * Math.max(0, per), maxAtomsPerBlock: Math.max(...atoms) };
  if (file === SEH_DATA_DIR + 'blocks_PDB_105.json') library = lib;
  return lib;
}

export interface BlockState {
  blockidxs: number[];
  /** [blockA, blockB, atomA, atomB], atoms local to their blocks. */
  jbonds: [number, number, number, number][];
  /** Open attachment points [block, atom], in order (a stem index points into this list). */
  stems: [number, number][];
}

export const emptyState = (): BlockState => ({ blockidxs: [], jbonds: [], stems: [] });

export function cloneState(s: BlockState): BlockState {
  return {
    blockidxs: [...s.blockidxs],
    jbonds: s.jbonds.map((j) => [...j] as BlockState['jbonds'][0]),
    stems: s.stems.map((x) => [...x] as [number, number]),
  };
}

/**
 * BlockMoleculeData.add_block: the first block opens all its r atoms (attachment atom last);
 * a later block n appends its own stems, then bonds to stems[stem] and closes it. The new
 * stems go to the end, so `stem` indexes the list the policy saw.
 */
export function addBlock(lib: BlockLibrary, s: BlockState, block: number, stem: number): BlockState {
  const out = cloneState(s);
  const r = lib.r[block];
  if (out.blockidxs.length === 0) {
    out.blockidxs.push(block);
    for (const a of r.slice(1)) out.stems.push([0, a]);
    out.stems.push([0, r[0]]);
    return out;
  }
  if (stem < 0 || stem >= s.stems.length) throw new Error(`stem ${stem} out of range (${s.stems.length} open)`);
  const n = out.blockidxs.length;
  out.blockidxs.push(block);
  for (const a of r.slice(1)) out.stems.push([n, a]);
  const st = out.stems[stem];
  out.jbonds.push([st[0], n, st[1], r[0]]);
  out.stems.splice(stem, 1);
  return out;
}

/** Blocks that can be removed: the single block, or every block with exactly one jbond. */
export function leafBlocks(s: BlockState): number[] {
  const n = s.blockidxs.length;
  if (n === 1) return [0];
  const deg = new Array<number>(n).fill(0);
  for (const [a, b] of s.jbonds) deg[a]++, deg[b]++;
  return deg.flatMap((d, k) => (d === 1 ? [k] : []));
}

/** len(mdp.parents(m)): parents are not de-duplicated (docs/benchmarks.md). */
export const numParents = (s: BlockState): number => (s.blockidxs.length === 0 ? 0 : leafBlocks(s).length);

/**
 * Removes leaf block k: its jbond's other end becomes an open stem again (appended), its own
 * stems disappear, and later blocks shift down by one. Returns the parent and the stem index
 * at which re-adding block blockidxs[k] gives back a state isomorphic to s.
 */
export function removeBlock(lib: BlockLibrary, s: BlockState, k: number): { parent: BlockState; stem: number; block: number } {
  const block = s.blockidxs[k];
  if (s.blockidxs.length === 1) return { parent: emptyState(), stem: 0, block };
  const j = s.jbonds.findIndex((b) => b[0] === k || b[1] === k);
  const jb = s.jbonds[j];
  const [ob, oa, myAtom] = jb[0] === k ? [jb[1], jb[3], jb[2]] : [jb[0], jb[2], jb[3]];
  const shift = (b: number) => (b > k ? b - 1 : b);
  const parent: BlockState = {
    blockidxs: s.blockidxs.filter((_, i) => i !== k),
    jbonds: s.jbonds.filter((_, i) => i !== j).map(([a, b, x, y]) => [shift(a), shift(b), x, y]),
    stems: s.stems.filter(([b]) => b !== k).map(([b, a]) => [shift(b), a]),
  };
  parent.stems.push([shift(ob), oa]);
  return { parent, stem: parent.stems.length - 1, block: translateBlock(lib, block, myAtom) };
}

/**
 * The block that re-attaches through `atom` (MolMDPExtended.translation_table): a first block
 * may be bonded through any of its r atoms, but an added block always bonds through r[0], so
 * the reverse move uses the first library block with the same SMILES whose r[0] is `atom`;
 * the block itself when none exists (then re-adding it gives another molecule, as in the
 * original code, whose parent count ignores this).
 */
export function translateBlock(lib: BlockLibrary, block: number, atom: number): number {
  if (lib.r[block][0] === atom) return block;
  for (let j = 0; j < NUM_BLOCKS; j++) if (lib.smiles[j] === lib.smiles[block] && lib.r[j][0] === atom) return j;
  return block;
}

/** Whether a state reached by adding blocks is terminal without a STOP (no stems, or 8 blocks). */
export const forcedTerminal = (s: BlockState): boolean =>
  s.blockidxs.length > 0 && (s.stems.length === 0 || s.blockidxs.length >= MAX_BLOCKS);

/**
 * Replays flat policy actions of the original code (0 = STOP, else 1 + stem·105 + block);
 * throws on an action the MDP forbids (STOP before 2 blocks, a stem out of range, a move
 * after a terminal state).
 */
export function replayActions(lib: BlockLibrary, actions: number[]): BlockState {
  let s = emptyState();
  let done = false;
  for (const a of actions) {
    if (done) throw new Error('action after a terminal state');
    if (a === 0) {
      if (s.blockidxs.length < MIN_BLOCKS) throw new Error('STOP before 2 blocks');
      done = true;
      continue;
    }
    const block = (a - 1) % NUM_BLOCKS,
      stem = Math.floor((a - 1) / NUM_BLOCKS);
    if (s.blockidxs.length > 0 && stem >= s.stems.length) throw new Error(`stem ${stem} out of range`);
    if (s.blockidxs.length === 0 && stem !== 0) throw new Error('the empty state has one stem row');
    s = addBlock(lib, s, block, stem);
    done = forcedTerminal(s);
  }
  return s;
}

/** Cumulative heavy-atom offsets of the blocks: atom i of block k is atom slices[k] + i. */
export function slicesOf(lib: BlockLibrary, s: BlockState): number[] {
  const out = [0];
  for (const b of s.blockidxs) out.push(out[out.length - 1] + lib.atoms[b]);
  return out;
}
