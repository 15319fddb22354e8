// Micro-benchmark of the benchmark policy network: forward (recorded), backward and Adam on
// 240 rows of a 32→256→256→10 MLP with 4 active inputs per row (hypergrid 8⁴-like), fused
// wasm-SIMD kernel vs tfjs. Reports the median over iterations of wall and CPU time
// (process.cpuUsage) per call; wall time on shared machines moves with other load, CPU time
// less. The fused backward includes its W_lᵀ refresh (once per parameter update).
// The loss is fake (fixed random dL/dout), so a real learning rate would drive the net, over
// thousands of steps, to ever larger outputs with more active ReLUs (≈1.5× the work of a
// freshly initialized net); the default --lr 1e-6 keeps the activity of the init while Adam
// does the same arithmetic.
//   node dist/bench/mlp.js [--rows 240] [--iters N] [--engines fused,tfjs] [--lr 1e-6]
import { selectBackend } from '../src/core/backend.js';
import { benchFlags } from './flags.js';
import { Rng } from '../src/core/rng.js';
import type { MlpSpec, SparseMlp } from '../src/nn/mlp.js';
import { FusedMlp } from '../src/nn/fused-mlp.js';
import { TfjsMlp } from '../src/nn/tfjs-mlp.js';

// --iters: by default 400 for the fused kernel, 60 for tfjs
const flags = benchFlags('node dist/bench/mlp.js [--rows 240] [--iters N] [--engines fused,tfjs] [--lr 1e-6]', {
  rows: '240',
  iters: '',
  engines: 'fused,tfjs',
  lr: '1e-6',
});
const arg = (name: 'iters', def: string) => flags[name] || def;
const rows = Number(flags.rows);
const engines = flags.engines.split(',');
const lr = Number(flags.lr);
const spec: MlpSpec = { inputDim: 32, nnz: 4, hidden: [256, 256], outputDim: 10 };

interface Timing {
  wall: number; // ms per call
  cpu: number;
}
type Phase = 'forward' | 'backward' | 'adam';

function inputs(n: number, rng: Rng): { idx: Int32Array; dOut: Float32Array } {
  const idx = new Int32Array(n * spec.nnz);
  for (let r = 0; r < n; r++) for (let k = 0; k < spec.nnz; k++) idx[r * spec.nnz + k] = k * 8 + rng.int(8);
  const dOut = new Float32Array(n * spec.outputDim);
  for (let i = 0; i < dOut.length; i++) dOut[i] = 0.1 * rng.normal();
  return { idx, dOut };
}

function bench(net: SparseMlp, iters: number): Record<Phase, Timing> {
  const rng = new Rng(1);
  const sets = Array.from({ length: 8 }, () => inputs(rows, rng));
  const out = new Float32Array(rows * spec.outputDim);
  const samples: Record<Phase, { wall: number[]; cpu: number[] }> = {
    forward: { wall: [], cpu: [] },
    backward: { wall: [], cpu: [] },
    adam: { wall: [], cpu: [] },
  };
  const time = (phase: Phase, f: () => void, count: boolean): void => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    if (count) {
      samples[phase].wall.push(t1 - t0);
      samples[phase].cpu.push((c1.user + c1.system) / 1000);
    }
  };
  const warm = Math.max(3, Math.floor(iters / 5));
  for (let it = 0; it < warm + iters; it++) {
    const { idx, dOut } = sets[it % sets.length];
    const count = it >= warm;
    net.resetTape();
    net.zeroGrad();
    let row0 = 0;
    time('forward', () => (row0 = net.forward(idx, rows, out, true)), count);
    time('backward', () => net.backward(row0, rows, dOut), count);
    time('adam', () => net.adamStep(lr), count);
  }
  const median = (a: number[]): number => {
    const b = [...a].sort((x, y) => x - y);
    return b.length % 2 ? b[b.length >> 1] : (b[b.length / 2 - 1] + b[b.length / 2]) / 2;
  };
  const res = {} as Record<Phase, Timing>;
  for (const phase of Object.keys(samples) as Phase[]) {
    res[phase] = { wall: median(samples[phase].wall), cpu: median(samples[phase].cpu) };
  }
  return res;
}

async function main(): Promise<void> {
  const results: Record<string, Record<Phase, Timing>> = {};
  let backend = '';
  for (const engine of engines) {
    let net: SparseMlp;
    let iters: number;
    if (engine === 'fused') {
      net = FusedMlp.create(spec, 0);
      iters = Number(arg('iters', '400'));
    } else if (engine === 'tfjs') {
      backend = (await selectBackend()).backend;
      net = TfjsMlp.create(spec, 0);
      iters = Number(arg('iters', '60'));
    } else {
      throw new Error(`unknown engine ${engine} (fused, tfjs)`);
    }
    results[engine] = bench(net, iters);
    net.dispose();
  }
  const fmt = (x: number): string => x.toFixed(3).padStart(8);
  console.log(
    `MLP ${spec.inputDim}→${spec.hidden.join('→')}→${spec.outputDim}, ${rows} rows, nnz ${spec.nnz}${backend ? `, tfjs backend ${backend}` : ''}`,
  );
  console.log(`median ms per call (wall / cpu)${['forward', 'backward', 'adam', 'total'].map((s) => s.padStart(19)).join('')}`);
  for (const [engine, r] of Object.entries(results)) {
    const cols = (['forward', 'backward', 'adam'] as Phase[]).map((p) => r[p]);
    cols.push({ wall: cols.reduce((s, c) => s + c.wall, 0), cpu: cols.reduce((s, c) => s + c.cpu, 0) });
    console.log(`${engine.padEnd(28)}${cols.map((c) => `${fmt(c.wall)} /${fmt(c.cpu)}`).join(' ')}`);
  }
  if (results.fused && results.tfjs) {
    const ratio = (['forward', 'backward', 'adam'] as Phase[]).map((p) => results.tfjs[p].cpu / results.fused[p].cpu);
    const tot = (e: string): number => (['forward', 'backward', 'adam'] as Phase[]).reduce((s, p) => s + results[e][p].cpu, 0);
    console.log(
      `tfjs / fused (cpu)${' '.repeat(10)}${[...ratio, tot('tfjs') / tot('fused')].map((x) => `${x.toFixed(1)}×`.padStart(19)).join('')}`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
