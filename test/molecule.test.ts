import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MoleculeEnv, profileLogReward, loadRDKit } from '../src/envs/molecule.js';
import { MOLECULE_BENCH_DEFAULTS, runMoleculeBench } from '../src/benchmarks/molecules.js';
import { buildDag, flowOracle, targetDistribution, terminalDistribution, totalVariation } from '../src/gfn/exact.js';
import { buildTrainer } from '../src/benchmarks/build-trainer.js';
import { policyOnDag } from '../src/gfn/evaluate.js';
import { Rng } from '../src/core/rng.js';
import { packFingerprint, tanimoto, TanimotoModes } from '../src/metrics/modes.js';
import { logSumExp } from '../src/core/math.js';

test('molecule DAG (3 sites × 3 fragments): every state valid, parents = substituents, Z = Σ R', async () => {
  const env = await MoleculeEnv.create({ beta: 2, sites: 3, fragments: 3 });
  const dag = buildDag(env);
  assert.equal(dag.numStates, 64);
  for (let s = 0; s < 64; s++) {
    let f = 0;
    for (let j = 0; j < 3; j++) if (dag.states[s * 3 + j] >= 0) f++;
    assert.equal(dag.numParents[s], f);
    assert.ok(env.info(dag.states, s).valid, env.smilesOf(dag.states, s));
  }
  // exit is allowed everywhere, so every state is an object and F(s0) = Σ_s R(s)
  assert.ok(Math.abs(flowOracle(dag).logZ - logSumExp(dag.logR)) < 1e-9);
  assert.equal(env.invalidCount, 0);
});

test('naphthalene symmetry: α positions give one canonical molecule, β another', async () => {
  const env = await MoleculeEnv.create({ beta: 1, sites: 8, fragments: 18 });
  const mono = (site: number) => {
    const s = env.initialStates(1);
    s[site] = 2; // O: a naphthol
    return env.info(s, 0).smiles;
  };
  // SMILES atoms a1..a10 = c1 c c c2 c c c c c2 c1 (fusion atoms a4, a9) and sites on
  // a1 a2 a3 a5 a6 a7 a8 a10: α sites (next to a fusion atom) are a3 a5 a8 a10 = sites 2 3 6 7
  const alpha = [2, 3, 6, 7].map(mono),
    beta = [0, 1, 4, 5].map(mono);
  assert.equal(new Set(alpha).size, 1);
  assert.equal(new Set(beta).size, 1);
  assert.notEqual(alpha[0], beta[0]);
});

test('descriptor-profile reward and popcount Tanimoto match direct computations', async () => {
  // log r = −½ Σ z²: at the profile centre 0; one σ off on one descriptor −½; two σ off on two −4
  assert.ok(profileLogReward({ exactmw: 350, CrippenClogP: 2.5, tpsa: 60, NumRotatableBonds: 3 }) === 0);
  assert.equal(profileLogReward({ exactmw: 400, CrippenClogP: 2.5, tpsa: 60, NumRotatableBonds: 3 }), -0.5);
  assert.ok(Math.abs(profileLogReward({ exactmw: 350, CrippenClogP: 4.5, tpsa: 100, NumRotatableBonds: 3 }) + 4) < 1e-12);
  const rd = await loadRDKit();
  const fp = (smi: string) => {
    const m = rd.get_mol(smi)!;
    const bytes = m.get_morgan_fp_as_uint8array(JSON.stringify({ radius: 2, nBits: 2048 }));
    m.delete();
    return bytes;
  };
  const a = fp('Oc1cccc2ccccc12'),
    b = fp('Nc1cccc2ccccc12');
  // Tanimoto from the unpacked bit sets
  let inter = 0,
    union = 0;
  for (let i = 0; i < a.length; i++)
    for (let t = 0; t < 8; t++) {
      const x = (a[i] >> t) & 1,
        y = (b[i] >> t) & 1;
      inter += x & y;
      union += x | y;
    }
  assert.ok(Math.abs(tanimoto(packFingerprint(a), packFingerprint(b)) - inter / union) < 1e-15);
  assert.equal(tanimoto(packFingerprint(a), packFingerprint(a)), 1);
  const modes = new TanimotoModes(0.5, 0.7);
  assert.equal(modes.offer('x', packFingerprint(a), 0.4), false, 'below the reward threshold');
  assert.equal(modes.offer('x', packFingerprint(a), 0.9), true);
  assert.equal(modes.offer('x2', packFingerprint(a), 0.9), false, 'similarity 1 ≥ 0.7');
  assert.equal(modes.offer('y', packFingerprint(fp('CCCCCCCCC(=O)O')), 0.9), true);
});

test('a short TB run on molecules finds Tanimoto-separated modes; same seed, same numbers', async () => {
  const o = {
    ...MOLECULE_BENCH_DEFAULTS,
    algo: 'tb' as const,
    iterations: 200,
    hidden: [128, 128],
    evalEvery: 50,
    testSize: 100,
    orders: 4,
  };
  const a = await runMoleculeBench(o);
  assert.ok(a.modes >= 1, `modes ${a.modes}`);
  assert.equal(a.invalid, 0);
  assert.equal(a.rewardEvaluations, 200 * 16);
  assert.ok(Number.isFinite(a.pearson));
  for (const m of a.topModes) assert.ok(m.reward >= 0.75);
  const b = await runMoleculeBench(o);
  assert.equal(a.pearson, b.pearson);
  assert.deepEqual(a.curve, b.curve);
});

test('M-DQN (α = ½, τ = 2) learns the 3 sites × 3 fragments molecule space: exact TV < 0.05', async () => {
  // Measured (1500 iterations, seed 1): the correct objective reaches TV 0.012 from 0.81; without
  // the Munchausen term (it then samples R^{1/τ}) it stays at 0.29. (Max in place of logsumexp
  // only reaches 0.022 here: that bug is caught by test/softrl-targets and the bitseq M-DQN test.)
  const env = await MoleculeEnv.create({ beta: 2, sites: 3, fragments: 3 });
  const dag = buildDag(env);
  const target = targetDistribution(dag);
  const t = await buildTrainer(
    env,
    {
      ...MOLECULE_BENCH_DEFAULTS,
      algo: 'mdqn',
      munchausenAlpha: 0.5,
      hidden: [64, 64],
      replayBatch: 64,
      learningStarts: 16,
      iterations: 1500,
    },
    new Rng(1),
  );
  for (let i = 0; i < 1500; i++) t.step();
  const tv = totalVariation(terminalDistribution(dag, policyOnDag(env, t.net, dag, t.temperature)), target);
  assert.ok(tv < 0.05, `M-DQN exact TV of the molecule sampler ${tv}`);
  t.dispose();
});
