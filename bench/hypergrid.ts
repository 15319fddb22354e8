/**
 * Throughput and quality of every objective on the reference workload used throughout the project:
 * hypergrid 4-D, H = 8, standard reward, 16 trajectories per iteration, 2000 iterations,
 * MLP 2×256. Each objective runs in its own process so peak RSS is its own.
 *
 *   npm run bench:hypergrid [-- --iterations N --engine fused|tfjs --algos tb,mdqn --seed S]
 *
 * Speed is compared on CPU time (process.cpuUsage, training steps only): on a shared machine wall
 * time moves with other load, CPU time much less. Reference figures, measured side by side with
 * the PyTorch code published with the paper (torchgfn 1.0, torch 1.13 with OpenBLAS, one thread,
 * anomaly detection off) on a quiet 2-core machine, same workload: TB 42.2 and Munchausen-DQN
 * 25.6 iterations per CPU-second (the issue "the seed's benchmarks at the seed's scale", speed
 * section; target ≥ 8× both). Reference empirical L1 (torchgfn 1.0, one CPU thread, same
 * workload): TB ≈ 1.0e-4, M-DQN ≈ 9.2e-5.
 */
import { loadavg } from 'node:os';
import type { BenchSummary } from '../src/benchmarks/hypergrid.js';
import { benchFlags, flowtuneJson } from './flags.js';

/** Iterations per CPU-second of the PyTorch reference on a quiet 2-core machine (see above), and its empirical L1. */
const REFERENCE: Record<string, { itPerCpuSec: number; l1: number } | undefined> = {
  tb: { itPerCpuSec: 42.2, l1: 1.0e-4 },
  mdqn: { itPerCpuSec: 25.6, l1: 9.2e-5 },
};
const TARGET_RATIO = 8;

const flags = benchFlags('npm run bench:hypergrid -- [--iterations N --engine fused|tfjs --algos tb,mdqn --seed S]', {
  iterations: '2000',
  engine: 'fused',
  seed: '0',
  algos: 'tb,db,subtb,softdqn,mdqn',
});
const { iterations, engine, seed } = flags;
const algos = flags.algos.split(',');

console.log(`hypergrid 4-D H=8 standard, batch 16, ${iterations} iterations, MLP 2×256, engine ${engine}, seed ${seed}`);
// CPU time still grows when other jobs share the cores (caches, SMT siblings): say how busy the machine was.
const load = () => loadavg()[0].toFixed(1);
console.log(`machine load (1-min average) at start: ${load()}`);
console.log(
  `reference: PyTorch (torchgfn 1.0, one thread) on a quiet 2-core machine, it/CPU-s: tb ${REFERENCE.tb!.itPerCpuSec}, mdqn ${REFERENCE.mdqn!.itPerCpuSec}; target ≥ ${TARGET_RATIO}×`,
);
console.log('algo     it/s   traj/s  it/CPU-s  ref it/CPU-s  ×ref(CPU)  tvExact   l1Empirical  ref L1    peak RSS');
for (const algo of algos) {
  const s = flowtuneJson<BenchSummary>([
    'bench',
    'hypergrid',
    '--algo',
    algo,
    '--ndim',
    '4',
    '--height',
    '8',
    '--batch',
    '16',
    '--iterations',
    iterations,
    '--engine',
    engine,
    '--seed',
    seed,
    '--eval-every',
    iterations,
  ]);
  const ref = REFERENCE[algo];
  const ratio = ref ? s.itPerCpuSec / ref.itPerCpuSec : NaN;
  const verdict = ref ? (ratio >= TARGET_RATIO ? ' (≥ target)' : ` (< ${TARGET_RATIO}×)`) : '';
  console.log(
    [
      algo.padEnd(7),
      s.itPerSec.toFixed(1).padStart(6),
      s.trajPerSec.toFixed(0).padStart(8),
      s.itPerCpuSec.toFixed(1).padStart(9),
      (ref ? ref.itPerCpuSec.toFixed(1) : '—').padStart(13),
      (ref ? `${ratio.toFixed(2)}×` : '—').padStart(10),
      s.tvExact.toFixed(4).padStart(9),
      s.l1Empirical.toExponential(2).padStart(12),
      (ref ? ref.l1.toExponential(1) : '—').padStart(9),
      `${s.peakRssMB.toFixed(0)} MB`.padStart(10),
    ].join(' ') + verdict,
  );
}
console.log(`machine load (1-min average) at end: ${load()}`);
