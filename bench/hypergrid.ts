/**
 * Throughput and quality of every objective on the reference workload used throughout the project:
 * hypergrid 4-D, H = 8, standard reward, 16 trajectories per iteration, 2000 iterations,
 * MLP 2×256. Each objective runs in its own process so peak RSS is its own.
 *
 *   npm run bench:hypergrid [-- --iterations N --engine fused|tfjs --algos tb,mdqn --seed S]
 *
 * Reference, measured with torchgfn 1.0 on one CPU thread on the same workload: TB 38.6 it/s with
 * empirical L1 ≈ 1.0e-4, Munchausen-DQN 22.4 it/s with L1 ≈ 9.2e-5.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchSummary } from '../src/benchmarks/hypergrid.js';
import { benchFlags } from './flags.js';

const REFERENCE: Record<string, { itPerSec: number; l1: number } | undefined> = {
  tb: { itPerSec: 38.6, l1: 1.0e-4 },
  mdqn: { itPerSec: 22.4, l1: 9.2e-5 },
};

const flags = benchFlags('npm run bench:hypergrid -- [--iterations N --engine fused|tfjs --algos tb,mdqn --seed S]', {
  iterations: '2000',
  engine: 'fused',
  seed: '0',
  algos: 'tb,db,subtb,softdqn,mdqn',
});
const { iterations, engine, seed } = flags;
const algos = flags.algos.split(',');
const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));

console.log(`hypergrid 4-D H=8 standard, batch 16, ${iterations} iterations, MLP 2×256, engine ${engine}, seed ${seed}`);
console.log('algo     it/s   traj/s  it/CPU-s  ×ref(wall)  ×ref(CPU)  tvExact   l1Empirical  ref L1    peak RSS');
for (const algo of algos) {
  const out = execFileSync(
    process.execPath,
    [
      cli,
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
      '--json',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const s = JSON.parse(out.trim().split('\n').pop()!) as BenchSummary;
  const ref = REFERENCE[algo];
  const ratio = (v: number) => (ref ? `${(v / ref.itPerSec).toFixed(2)}×` : '—');
  console.log(
    [
      algo.padEnd(7),
      s.itPerSec.toFixed(1).padStart(6),
      s.trajPerSec.toFixed(0).padStart(8),
      s.itPerCpuSec.toFixed(1).padStart(9),
      ratio(s.itPerSec).padStart(11),
      ratio(s.itPerCpuSec).padStart(10),
      s.tvExact.toFixed(4).padStart(9),
      s.l1Empirical.toExponential(2).padStart(12),
      (ref ? ref.l1.toExponential(1) : '—').padStart(9),
      `${s.peakRssMB.toFixed(0)} MB`.padStart(10),
    ].join(' '),
  );
}
