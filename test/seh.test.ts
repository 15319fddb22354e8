/**
 * The sEH benchmark against data/seh/reference_molecules.jsonl, computed by an independent
 * float64 reference that reproduces the original benchmark's stored rewards to 1e-13.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  loadBlocks,
  replayActions,
  forcedTerminal,
  numParents,
  removeBlock,
  addBlock,
  leafBlocks,
  SEH_DATA_DIR,
  type BlockState,
} from '../src/envs/seh-blocks.js';
import { SehChemistry, assemblySmiles, dropOneH, type AtomRow, type BondRow } from '../src/envs/seh-chem.js';
import { SehProxy, sehLogReward } from '../src/envs/seh-proxy.js';

interface Ref extends BlockState {
  smiles: string;
  actions: number[];
  n_parents: number;
  proxy_output: number;
  reward: number;
  atoms: AtomRow[];
  bonds: BondRow[];
}
const refs: Ref[] = readFileSync(SEH_DATA_DIR + 'reference_molecules.jsonl', 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const lib = loadBlocks();

test('reference file: 1150 molecules', () => assert.equal(refs.length, 1150));

test('block library: 105 blocks; the atom counts of a few blocks by hand', () => {
  assert.equal(lib.smiles.length, 105);
  assert.equal(lib.atoms[0], 6); // c1ccccc1
  assert.equal(lib.atoms[29], 1); // Cl
  assert.equal(lib.atoms[100], 16); // O=c1nc2[nH]c3ccccc3nc-2c(=O)[nH]1
  // 6 stems from a 6-r first block, then at most 4 more per block (5-r blocks) for 7 blocks
  assert.equal(lib.maxStems, 6 + 7 * 4);
});

test("replaying each molecule's actions gives its state exactly, and its parent count", () => {
  for (const r of refs) {
    const s = replayActions(lib, r.actions);
    assert.deepEqual(s.blockidxs, r.blockidxs, r.smiles);
    assert.deepEqual(s.jbonds, r.jbonds, r.smiles);
    assert.deepEqual(s.stems, r.stems, r.smiles);
    assert.equal(numParents(s), r.n_parents, r.smiles);
  }
});

test('removing a leaf block and re-adding it gives the same molecule (as SMILES) whenever a block re-attaches through that atom', async () => {
  const chem = await SehChemistry.create(lib);
  let checked = 0;
  for (const r of refs.slice(0, 150)) {
    for (const k of leafBlocks(r)) {
      const { parent, stem, block } = removeBlock(lib, r, k);
      assert.equal(parent.blockidxs.length, r.blockidxs.length - 1);
      const jb = r.jbonds.find((b) => b[0] === k || b[1] === k);
      const atom = jb ? (jb[0] === k ? jb[2] : jb[3]) : lib.r[block][0];
      if (lib.r[block][0] !== atom) continue; // no library block bonds through this atom
      const back = addBlock(lib, parent, block, stem);
      assert.equal(chem.build(back)!.smiles, r.smiles);
      checked++;
    }
  }
  assert.ok(checked > 200, `checked ${checked}`);
});

test('dropOneH: one explicit H fewer on bracket atoms only', () => {
  assert.equal(dropOneH('[nH]'), '[n]');
  assert.equal(dropOneH('[NH2+]'), '[NH+]');
  assert.equal(dropOneH('[SH2+]'), '[SH+]');
  assert.equal(dropOneH('[O-]'), '[O-]');
  assert.equal(dropOneH('C'), 'C');
});

test('proxy from the reference atom/bond tables: every molecule within 1e-4, its reward within 1e-3 relative', () => {
  const proxy = new SehProxy();
  let worst = 0,
    worstRel = 0;
  for (const r of refs) {
    const p = proxy.score(r.atoms, r.bonds);
    worst = Math.max(worst, Math.abs(p - r.proxy_output));
    worstRel = Math.max(worstRel, Math.abs(Math.exp(sehLogReward(p, 10)) / r.reward - 1));
  }
  assert.ok(worst <= 1e-4, `max |Δproxy| = ${worst}`);
  assert.ok(worstRel <= 1e-3, `max relative ΔR = ${worstRel}`);
});

test("RDKit assembly: canonical SMILES, atom and bond tables equal the reference (so the proxy input is the reference's)", async () => {
  const chem = await SehChemistry.create(lib);
  const sortBonds = (b: BondRow[]) => b.map(([i, j, t]) => [Math.min(i, j), Math.max(i, j), t]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (const r of refs) {
    const m = chem.build(r)!;
    assert.equal(m.smiles, r.smiles, assemblySmiles(lib, r));
    assert.deepEqual(m.atoms, r.atoms, r.smiles);
    assert.deepEqual(sortBonds(m.bonds), sortBonds(r.bonds), r.smiles);
  }
});

test('reward floor: (0.1/8)^10 for a proxy at or below 0.1', () => {
  assert.equal(Math.exp(sehLogReward(-3, 10)), Math.exp(10 * Math.log(0.1 / 8)));
  assert.ok(Math.abs(Math.exp(sehLogReward(-3, 10)) - 9.31322574615479e-20) < 1e-30);
});

test('SehEnv: random forward walks stay legal, rows round-trip, parents = backward-mask count', async () => {
  const { SehEnv } = await import('../src/envs/seh-env.js');
  const { Rng } = await import('../src/core/rng.js');
  const env = await SehEnv.create(10);
  const rng = new Rng(7);
  const mask = new Uint8Array(env.nActions),
    bmask = new Uint8Array(env.nBackActions);
  for (let walk = 0; walk < 40; walk++) {
    let row = env.initialStates(1);
    const flat: number[] = [];
    for (let t = 0; t < env.maxSteps; t++) {
      env.forwardMask(row, 1, mask);
      const allowed = [...mask.keys()].filter((a) => mask[a]);
      const a = allowed[rng.int(allowed.length)];
      if (a === env.exitAction) {
        flat.push(0);
        break;
      }
      flat.push(a + 1);
      const next = new Int32Array(env.stateDim);
      env.step(row, Int32Array.of(a), 1, next);
      row = next;
    }
    assert.equal(flat[flat.length - 1], 0, 'every walk ends with exit');
    // the original MDP ends a state with no stems or 8 blocks without a STOP; here exit is forced
    const forced = forcedTerminal(env.decode(row, 0));
    if (forced)
      assert.deepEqual(
        [...mask.keys()].filter((a) => mask[a]),
        [env.exitAction],
      );
    const s = replayActions(lib, forced ? flat.slice(0, -1) : flat);
    assert.deepEqual(env.decode(row, 0), s);
    env.backwardMask(row, 1, bmask);
    assert.equal(
      bmask.reduce((x, y) => x + y, 0),
      numParents(s),
    );
    const rt = new Int32Array(env.stateDim);
    env.encodeState(s, rt, 0);
    assert.deepEqual(rt, row);
  }
});

test('flowtune molecules score --json: the reference proxy and reward for the first molecules', async () => {
  const { execFileSync } = await import('node:child_process');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(tmpdir(), 'seh-'));
  const file = path.join(dir, 'in.jsonl');
  const pick = [0, 100, 500, 1000];
  writeFileSync(
    file,
    pick.map((i) => JSON.stringify({ blockidxs: refs[i].blockidxs, jbonds: refs[i].jbonds, stems: refs[i].stems })).join('\n') + '\n',
  );
  const bin = path.join(SEH_DATA_DIR, '..', '..', 'bin', 'flowtune.js');
  const out = execFileSync(process.execPath, [bin, 'molecules', 'score', '--input', file, '--json'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(out.length, pick.length);
  pick.forEach((i, k) => {
    assert.equal(out[k].smiles, refs[i].smiles);
    assert.ok(Math.abs(out[k].proxy - refs[i].proxy_output) <= 1e-4);
    assert.ok(Math.abs(out[k].reward / refs[i].reward - 1) <= 1e-3);
  });
  writeFileSync(file, '{"blockidxs":[3,200],"jbonds":[[0,1,0,0]],"stems":[]}\n');
  assert.throws(
    () => execFileSync(process.execPath, [bin, 'molecules', 'score', '--input', file], { stdio: 'pipe' }),
    (e: { status: number; stderr: Buffer }) => e.status === 2 && e.stderr.toString().trim().split('\n').length === 1,
  );
});

test('a short sEH run: same seed, same numbers; Pearson is a finite correlation', async () => {
  const { runSehBench, SEH_BENCH_DEFAULTS } = await import('../src/benchmarks/molecules-seh.js');
  const o = { ...SEH_BENCH_DEFAULTS, algo: 'tb' as const, iterations: 3, batch: 2, evalEvery: 3, testSize: 6, orders: 1, hidden: [32] };
  const a = await runSehBench(o),
    b = await runSehBench(o);
  assert.equal(a.rewardEvaluations, 6);
  assert.equal(a.pearson, b.pearson);
  assert.deepEqual(a.curve, b.curve);
  assert.equal(a.uniqueStates, b.uniqueStates);
  assert.ok(Number.isFinite(a.pearson) && Math.abs(a.pearson) <= 1);
});
