import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gaussianTarget, mala, ula } from '../src/mcmc/langevin.js';
import { HypergridMhKernel, MetropolisHastings, hypergridProposal } from '../src/mcmc/mh.js';
import { runHypergridMh } from '../src/benchmarks/hypergrid-mh.js';
import { Hypergrid } from '../src/envs/hypergrid.js';
import { totalVariation } from '../src/gfn/exact.js';
import { Rng } from '../src/core/rng.js';
import { logSumExp } from '../src/core/math.js';

function meanVar(x: Float64Array): { mean: number; variance: number } {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let s = 0;
  for (const v of x) s += (v - m) * (v - m);
  return { mean: m, variance: s / (x.length - 1) };
}

// Ornstein–Uhlenbeck: dX = −X dt + √2 dW is the Langevin diffusion of N(0, 1), and
// Law(X_t | X_0 = x0) = N(x0·e^{−t}, 1 − e^{−2t}). k steps of size h approximate t = kh.
const X0 = 2,
  H = 0.01,
  K = 100,
  T = H * K,
  CHAINS = 20_000;
const ouMean = X0 * Math.exp(-T),
  ouVar = 1 - Math.exp(-2 * T);
// ULA on this target is the exact AR(1) x ← (1−h)x + √(2h)ξ, so its law after k steps is
// N(x0(1−h)^k, (1 − (1−h)^{2k}) / (1 − h/2)): the step-size bias is known in closed form.
const ulaMean = X0 * (1 - H) ** K,
  ulaVar = (1 - (1 - H) ** (2 * K)) / (1 - H / 2);
// Monte-Carlo standard errors of the sample mean and variance of CHAINS Gaussian draws.
const seMean = Math.sqrt(ouVar / CHAINS),
  seVar = ouVar * Math.sqrt(2 / (CHAINS - 1));

test('ULA on Ornstein–Uhlenbeck: mean/variance at t match the discretized and the exact law', () => {
  const x = new Float64Array(CHAINS).fill(X0);
  ula(gaussianTarget(1), x, CHAINS, H, K, new Rng(11));
  const { mean, variance } = meanVar(x);
  // against the chain's own closed form: Monte-Carlo error only (4 standard errors)
  assert.ok(Math.abs(mean - ulaMean) < 4 * seMean, `mean ${mean} vs ${ulaMean}`);
  assert.ok(Math.abs(variance - ulaVar) < 4 * seVar, `var ${variance} vs ${ulaVar}`);
  // against the diffusion: plus the O(h) bias, whose size is the closed-form gap above
  assert.ok(Math.abs(mean - ouMean) < Math.abs(ulaMean - ouMean) + 4 * seMean);
  assert.ok(Math.abs(variance - ouVar) < Math.abs(ulaVar - ouVar) + 4 * seVar);
});

test('MALA on Ornstein–Uhlenbeck: mean/variance at t within step-size bias + MC error', () => {
  const x = new Float64Array(CHAINS).fill(X0);
  const st = mala(gaussianTarget(1), x, CHAINS, H, K, new Rng(12));
  // at h = 0.01 almost every ULA proposal is accepted, so MALA follows the same O(h)
  // discretization; allow twice ULA's exact bias for the (rare) rejections
  assert.ok(st.acceptanceRate > 0.99, `acceptance ${st.acceptanceRate}`);
  const { mean, variance } = meanVar(x);
  assert.ok(Math.abs(mean - ouMean) < 2 * Math.abs(ulaMean - ouMean) + 4 * seMean, `mean ${mean} vs ${ouMean}`);
  assert.ok(Math.abs(variance - ouVar) < 2 * Math.abs(ulaVar - ouVar) + 4 * seVar, `var ${variance} vs ${ouVar}`);
});

test('standard Gaussian: MALA is exact at a large step, ULA has its closed-form bias 1/(1 − h/2)', () => {
  const d = 5,
    C = 2000,
    h = 0.5,
    steps = 300;
  const target = gaussianTarget(d);
  const n = d * C; // pooled coordinates (independent chains, independent coordinates)
  const se = (v: number) => v * Math.sqrt(2 / (n - 1));
  const xu = new Float64Array(n).fill(3);
  ula(target, xu, C, h, steps, new Rng(21));
  const u = meanVar(xu);
  const ulaStationary = 1 / (1 - h / 2); // 4/3: the AR(1) x ← (1−h)x + √(2h)ξ at equilibrium
  assert.ok(Math.abs(u.mean) < 4 * Math.sqrt(ulaStationary / n), `ULA mean ${u.mean}`);
  assert.ok(Math.abs(u.variance - ulaStationary) < 4 * se(ulaStationary), `ULA var ${u.variance}`);

  const xm = new Float64Array(n).fill(3);
  const st = mala(target, xm, C, h, steps, new Rng(22));
  const m = meanVar(xm);
  assert.ok(st.acceptanceRate > 0.5 && st.acceptanceRate < 1, `acceptance ${st.acceptanceRate}`);
  assert.ok(Math.abs(m.mean) < 4 * Math.sqrt(1 / n), `MALA mean ${m.mean}`);
  assert.ok(Math.abs(m.variance - 1) < 4 * se(1), `MALA var ${m.variance}`);

  // π is stationary for MALA at any h: start at exact N(0, 1) draws with h = 1.5, where
  // ULA's AR(1) factor is −0.5 and its stationary variance would be 1/(1 − 0.75) = 4
  const rng = new Rng(23);
  const xs = Float64Array.from({ length: n }, () => rng.normal());
  mala(target, xs, C, 1.5, 50, rng);
  const s = meanVar(xs);
  assert.ok(Math.abs(s.variance - 1) < 4 * se(1), `MALA var at h=1.5: ${s.variance}`);
});

// Small hypergrid (2-D, H = 5, standard reward): every state indexed by k = x0 + 5·x1.
const G = { ndim: 2, height: 5, reward: 'standard' as const };
function gridTarget() {
  const env = new Hypergrid(G);
  const N = G.height ** G.ndim;
  const all = new Int32Array(N * 2);
  for (let k = 0; k < N; k++) {
    all[2 * k] = k % G.height;
    all[2 * k + 1] = Math.floor(k / G.height);
  }
  const logR = new Float64Array(N);
  env.logReward(all, N, logR);
  const z = logSumExp(logR);
  return { env, N, logR, target: logR.map((l) => Math.exp(l - z)) };
}

/** Upper bound on E TV(empirical of n iid draws, p): ½ Σ √(p_i(1 − p_i)/n) (Jensen). */
function multinomialTvBound(p: Float64Array, n: number): number {
  let s = 0;
  for (const v of p) s += Math.sqrt((v * (1 - v)) / n);
  return s / 2;
}

test('MH kernel on the hypergrid: R/Z is stationary and reversible; the exact marginal converges monotonically', () => {
  const { N, logR, target } = gridTarget();
  const kernel = new HypergridMhKernel(G.ndim, G.height, logR);
  const p = Float64Array.from(target);
  kernel.apply(p);
  assert.ok(totalVariation(p, target) < 1e-14, 'πK = π');
  // detailed balance π(x)K(x,y) = π(y)K(y,x) for every pair, row by row from unit vectors
  const rows: Float64Array[] = [];
  for (let k = 0; k < N; k++) {
    const e = new Float64Array(N);
    e[k] = 1;
    kernel.apply(e);
    assert.ok(Math.abs(e.reduce((a, b) => a + b, 0) - 1) < 1e-14, 'rows sum to 1');
    rows.push(e);
  }
  for (let x = 0; x < N; x++) for (let y = 0; y < N; y++) assert.ok(Math.abs(target[x] * rows[x][y] - target[y] * rows[y][x]) < 1e-15);
  // TV(δ_{s0}K^t, π) is non-increasing in t and reaches ~0
  const m = new Float64Array(N);
  m[0] = 1;
  let prev = totalVariation(m, target);
  for (let t = 1; t <= 20_000; t++) {
    kernel.apply(m);
    const tv = totalVariation(m, target);
    assert.ok(tv <= prev + 1e-15);
    prev = tv;
  }
  assert.ok(prev < 1e-3, `TV after 20000 steps ${prev}`);
});

test("MH chains' empirical distribution matches the exact marginal, and converges to R/Z", () => {
  const { env, N, logR, target } = gridTarget();
  const kernel = new HypergridMhKernel(G.ndim, G.height, logR);
  const C = 1000;
  const mh = new MetropolisHastings(
    (s, n, o) => env.logReward(s, n, o),
    hypergridProposal(G.ndim, G.height),
    new Rng(5),
    env.initialStates(C),
    C,
  );
  const marginal = new Float64Array(N);
  marginal[0] = 1;
  const hist = () => {
    const h = new Float64Array(N);
    for (let i = 0; i < C; i++) h[mh.states[2 * i] + G.height * mh.states[2 * i + 1]] += 1 / C;
    return h;
  };
  for (let t = 1; t <= 12_000; t++) {
    mh.step();
    kernel.apply(marginal);
    if (t === 50) {
      // the simulated chains follow the exact kernel: TV to δ_{s0}K^50 is pure sampling error
      const tv = totalVariation(hist(), marginal);
      assert.ok(tv < 1.3 * multinomialTvBound(marginal, C), `t=50: TV ${tv} vs bound ${multinomialTvBound(marginal, C)}`);
    }
  }
  const tvFinal = totalVariation(hist(), target);
  const bound = totalVariation(marginal, target) + 1.3 * multinomialTvBound(target, C);
  assert.ok(tvFinal < bound, `t=12000: TV(empirical, R/Z) ${tvFinal} vs ${bound}`);
  assert.ok(
    totalVariation(
      hist(),
      new Float64Array(N).fill(0).map((_, k) => (k === 0 ? 1 : 0)),
    ) > 0.5,
    'chains left s0',
  );
  // every proposal that stays on the grid costs one reward evaluation, plus one per chain at start
  assert.ok(mh.rewardEvaluations > C && mh.rewardEvaluations <= C * 12_001);
});

test('hypergrid mh bench: deterministic, exact TV decreasing, reward evaluations counted', () => {
  const o = { ...G, iterations: 4000, chains: 16, seed: 3, evalEvery: 1000 };
  const recs: number[] = [];
  const a = runHypergridMh(o, (m) => recs.push(m.tvExact));
  const b = runHypergridMh(o);
  assert.equal(a.tvExact, b.tvExact);
  assert.equal(a.l1Empirical, b.l1Empirical);
  assert.equal(a.rewardEvaluations, b.rewardEvaluations);
  assert.notEqual(runHypergridMh({ ...o, seed: 4 }).l1Empirical, a.l1Empirical);
  assert.equal(recs.length, 4);
  for (let i = 1; i < recs.length; i++) assert.ok(recs[i] < recs[i - 1]);
  // 2D proposals per chain-step; those leaving the grid are free: between half and all of them
  assert.ok(a.rewardEvaluations > 16 + 0.5 * 16 * 4000 && a.rewardEvaluations <= 16 * 4001);
  assert.ok(Math.abs(a.tvEmpirical - (a.l1Empirical * 25) / 2) < 1e-12);
});

test('flowtune verify langevin: ULA matches its closed-form law at t = 1; bad flags exit 2', () => {
  const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
  const r = spawnSync(
    process.execPath,
    [cli, 'verify', 'langevin', '--dim', '1', '--chains', '20000', '--step', '0.01', '--steps', '100', '--seed', '3', '--json'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  // closed forms of the OU diffusion and of ULA's AR(1) from x0 = 3 (independent of the code)
  assert.ok(Math.abs(j.exact.mean - 3 * Math.exp(-1)) < 1e-12 && Math.abs(j.ulaExact.variance - (1 - 0.99 ** 200) / 0.995) < 1e-12);
  const se = Math.sqrt(j.ulaExact.variance / 20000);
  assert.ok(Math.abs(j.ula.mean - j.ulaExact.mean) < 4 * se, `ULA mean ${j.ula.mean} vs ${j.ulaExact.mean}`);
  assert.ok(j.mala.acceptanceRate > 0.99);
  const bad = spawnSync(process.execPath, [cli, 'verify', 'langevin', '--step', 'x'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});
