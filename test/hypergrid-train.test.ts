import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HYPERGRID_DEFAULTS, runHypergridBench } from '../src/benchmarks/hypergrid.js';
import type { Algo } from '../src/benchmarks/build-trainer.js';
import { hypergridLogZ } from '../src/envs/hypergrid-oracle.js';

const small = (algo: Algo, extra: Partial<typeof HYPERGRID_DEFAULTS> = {}) => ({
  ...HYPERGRID_DEFAULTS,
  algo,
  ndim: 2,
  height: 8,
  iterations: 1000,
  evalEvery: 1000,
  ...extra,
});

const logZTrue = hypergridLogZ({ ndim: 2, height: 8, reward: 'standard' });

// Exact TV of the learned sampler (forward DP over all 64 states) after 1000 iterations of
// 16 trajectories. Threshold: TV < 0.05 for every objective (a broken objective stays far above it).
for (const algo of ['tb', 'db', 'subtb', 'softdqn', 'mdqn'] as const) {
  test(`${algo} learns 2-D H=8 hypergrid to exact TV < 0.05`, async () => {
    const s = await runHypergridBench(small(algo));
    assert.ok(s.tvExact < 0.05, `${algo}: tvExact ${s.tvExact}`);
    assert.ok(s.l1Empirical < 0.01, `${algo}: l1Empirical ${s.l1Empirical}`);
    assert.ok(Math.abs(s.logZTrue - logZTrue) < 1e-12);
    // every objective has a log Z estimate (log Z_θ, F(s0) or V(s0)); it must be close
    assert.ok(s.logZ !== null && Math.abs(s.logZ - logZTrue) < 0.1, `${algo}: logZ ${s.logZ} vs ${logZTrue}`);
  });
}

test('same seed and config give identical numbers; another seed does not', async () => {
  const a = await runHypergridBench(small('subtb', { iterations: 60, evalEvery: 20 }));
  const b = await runHypergridBench(small('subtb', { iterations: 60, evalEvery: 20 }));
  const c = await runHypergridBench(small('subtb', { iterations: 60, evalEvery: 20, seed: 1 }));
  assert.equal(a.tvExact, b.tvExact);
  assert.equal(a.l1Empirical, b.l1Empirical);
  assert.equal(a.logZ, b.logZ);
  assert.notEqual(a.tvExact, c.tvExact);
  const d = await runHypergridBench(small('mdqn', { iterations: 40, evalEvery: 20 }));
  const e = await runHypergridBench(small('mdqn', { iterations: 40, evalEvery: 20 }));
  assert.equal(d.tvExact, e.tvExact);
});
