/**
 * npm run reproduce -- --family hypergrid|bitseq|molecules|all --seeds 0,1,2 --jobs 2 [--budget B]
 *   [--out runs/reproduce] [--algos tb,db,subtb,mdqn] [--ks 2,4,6,8,10] [--betas 4,8,10,16]
 *   [--rewards standard,hard] [--bitseq-test-modes 60] [--mol-test-size 950] [--orders 10] [--no-docs]
 *   [--extend]
 *
 * Runs every (setting, seed) of the plan in src/benchmarks/reproduce.ts as `flowtune bench`
 * processes, --jobs at a time. Resumable: a run whose folder holds summary.json is kept, a
 * half-written one is redone; a folder whose reproduce.json names another configuration is
 * refused, unless --extend adds this invocation's settings (k, β, algorithms, ...) to its grid.
 * Then writes mean ± std curves (docs/figures/reproduce-<family>.svg) and tables (between the
 * reproduce markers of docs/benchmarks.md, and <out>/results.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/core/errors.js';
import { writeFileAtomic } from '../src/core/io.js';
import { liveLockHolder } from '../src/core/lock.js';
import {
  configKey,
  extendConfig,
  isReproduceConfig,
  iterationsFor,
  parseReproduceArgs,
  mergeReproduceBlocks,
  planRuns,
  reproduceBlock,
  PAPER_BATCH,
  PAPER_ITERATIONS,
  totalWallSeconds,
  type Family,
  type Invocation,
  type PlannedRun,
  type ReproduceArgs,
} from '../src/benchmarks/reproduce.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'bin', 'flowtune.js');

function fail(msg: string, code = 2): never {
  process.stderr.write(`reproduce: ${msg}\n`);
  process.exit(code);
}

let args: ReproduceArgs;
try {
  args = parseReproduceArgs(process.argv.slice(2));
} catch (e) {
  if (e instanceof UsageError) fail(e.message);
  throw e;
}
const { seeds, jobs, out } = args;
let config = args.config;

// one configuration per folder: refuse to mix runs of different budgets or grids (--extend adds
// settings to the folder's grid)
try {
  mkdirSync(out, { recursive: true });
} catch (e) {
  fail(`cannot create ${out}: ${(e as NodeJS.ErrnoException).code}`);
}
const cfgFile = join(out, 'reproduce.json');
if (existsSync(cfgFile)) {
  let prev: unknown;
  try {
    prev = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch {
    prev = undefined;
  }
  if (!isReproduceConfig(prev)) fail(`${cfgFile} is not a reproduce configuration; choose another --out`);
  if (args.extend) {
    const merged = extendConfig(prev, config);
    if (typeof merged === 'string') fail(`${out}: ${merged}`);
    config = merged;
    writeFileAtomic(cfgFile, JSON.stringify(config, null, 2) + '\n');
  } else if (configKey(prev) !== configKey(config)) {
    const hint = typeof extendConfig(prev, config) === 'string' ? '' : ', or --extend to add these settings to it';
    fail(`${out} holds runs of another configuration (${cfgFile}); choose another --out or repeat its options${hint}`);
  }
} else writeFileAtomic(cfgFile, JSON.stringify(config, null, 2) + '\n');

const runs = planRuns(config, seeds);
const todo = runs.filter((r) => !existsSync(join(out, r.id, 'summary.json')));
process.stderr.write(
  `reproduce: ${runs.length} runs (${runs.length - todo.length} already finished), ${jobs} at a time, budget ${JSON.stringify(config.budget)} of the paper's iterations\n`,
);

// The bench processes of this invocation: a signal that stops it stops them too, so that none
// keeps writing into a run folder that the next invocation will redo.
const children = new Set<ChildProcess>();
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const)
  process.on(signal, () => {
    for (const c of children) c.kill('SIGTERM');
    process.exit(code);
  });

function runOne(r: PlannedRun): Promise<void> {
  const dir = join(out, r.id);
  // a run folder still being written (a bench process of another invocation) is left alone
  const holder = liveLockHolder(dir);
  if (holder) return Promise.reject(new Error(`${r.id} is being written by ${holder}; left alone`));
  rmSync(dir, { recursive: true, force: true }); // a half-written run from a killed reproduction
  mkdirSync(dirname(dir), { recursive: true });
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cli, ...r.args, '--out', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
    child.on('close', (code) => {
      children.delete(child);
      if (code === 0) {
        process.stderr.write(`  done ${r.id} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
        resolve();
      } else reject(new Error(`${r.id} exited with ${code}: ${err.trim().split('\n').pop()}`));
    });
  });
}

const t0 = Date.now();
// this invocation's record, rewritten after every finished run: a killed invocation keeps the
// time up to its last finished run, and invocations side by side each keep their own record
const timingFile = join(out, 'timing.json');
const started = new Date(t0).toISOString();
let finishedRuns = 0;
const readTiming = (): { invocations: Invocation[] } =>
  existsSync(timingFile) ? JSON.parse(readFileSync(timingFile, 'utf8')) : { invocations: [] };
function recordTiming(): { invocations: Invocation[] } {
  const timing = readTiming();
  const mine: Invocation = {
    started,
    finished: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - t0) / 1000),
    runs: finishedRuns,
  };
  const i = timing.invocations.findIndex((x) => x.started === started);
  if (i >= 0) timing.invocations[i] = mine;
  else timing.invocations.push(mine);
  writeFileAtomic(timingFile, JSON.stringify(timing, null, 2) + '\n');
  return timing;
}
let next = 0;
const errors: string[] = [];
await Promise.all(
  Array.from({ length: Math.min(jobs, todo.length) }, async () => {
    while (next < todo.length) {
      const r = todo[next++];
      try {
        await runOne(r);
        finishedRuns++;
        recordTiming();
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  }),
);
const wall = (Date.now() - t0) / 1000;
// wall time over the invocations that ran something (a resumed reproduction adds up)
const timing = todo.length > 0 ? recordTiming() : readTiming();
const totalWall = totalWallSeconds(timing.invocations);
if (errors.length) fail(`${errors.length} runs failed; rerun to retry them:\n  ${errors.join('\n  ')}`, 1);

// ---------------------------------------------------------------- aggregation

interface Agg {
  setting: string;
  seeds: number;
  x: number[];
  mean: number[];
  std: number[];
  finals: Record<string, { mean: number; std: number }>;
}

const meanStd = (v: number[]) => {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const s = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
  return { mean: m, std: s };
};

const CURVE: Record<Family, { x: string; y: string; label: string }> = {
  hypergrid: { x: 'trajectories', y: 'tvExact', label: 'exact TV(P_T, R/Z)' },
  bitseq: { x: 'rewardEvaluations', y: 'modesFound', label: 'modes found (of 60)' },
  molecules: { x: 'rewardEvaluations', y: 'modes', label: 'modes (proxy ≥ 7, Tanimoto < 0.7)' },
};
const FINALS: Record<Family, string[]> = {
  hypergrid: ['tvExact', 'l1Empirical', 'itPerSec', 'itPerCpuSec', 'peakRssMB'],
  bitseq: ['spearman', 'modesFound', 'itPerSec', 'itPerCpuSec', 'peakRssMB'],
  molecules: ['pearson', 'modes', 'itPerSec', 'itPerCpuSec', 'peakRssMB'],
};

function aggregate(family: Family): Agg[] {
  const settings = [...new Set(runs.filter((r) => r.family === family).map((r) => r.setting))];
  return settings.map((setting) => {
    const rs = runs.filter((r) => r.setting === setting);
    const curves = rs.map((r) =>
      readFileSync(join(out, r.id, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, number>),
    );
    const sums = rs.map((r) => {
      const s = JSON.parse(readFileSync(join(out, r.id, 'summary.json'), 'utf8')) as Record<string, number>;
      s.itPerCpuSec ??= s.iterations / s.cpuSeconds;
      return s;
    });
    const n = Math.min(...curves.map((c) => c.length));
    const { x, y } = CURVE[family];
    const pts = Array.from({ length: n }, (_, i) => meanStd(curves.map((c) => c[i][y])));
    const finals = Object.fromEntries(FINALS[family].map((k) => [k, meanStd(sums.map((s) => s[k]))]));
    return {
      setting,
      seeds: rs.length,
      x: curves[0].slice(0, n).map((p) => p[x]),
      mean: pts.map((p) => p.mean),
      std: pts.map((p) => p.std),
      finals,
    };
  });
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

/** Panels of mean ± std curves (one panel per group of settings), as a standalone SVG. */
function svg(title: string, yLabel: string, panels: { name: string; series: Agg[] }[]): string {
  const PW = 360,
    PH = 240,
    M = { l: 55, r: 10, t: 40, b: 45 };
  const W = panels.length * (PW + M.l + M.r),
    H = PH + M.t + M.b + 20 * Math.ceil(Math.max(...panels.map((p) => p.series.length)) / 2);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  let body = `<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`;
  panels.forEach((p, pi) => {
    const ox = pi * (PW + M.l + M.r) + M.l,
      oy = M.t;
    const xs = p.series.flatMap((s) => s.x),
      ys = p.series.flatMap((s) => s.mean.flatMap((m, i) => [m - s.std[i], m + s.std[i]]));
    const x0 = Math.min(...xs),
      x1 = Math.max(...xs, x0 + 1),
      y0 = Math.min(0, ...ys),
      y1 = Math.max(...ys, y0 + 1);
    const X = (v: number) => ox + ((v - x0) / (x1 - x0)) * PW,
      Y = (v: number) => oy + PH - ((v - y0) / (y1 - y0)) * PH;
    body += `<text x="${ox}" y="${oy - 8}" font-size="12">${esc(p.name)}</text>`;
    body += `<rect x="${ox}" y="${oy}" width="${PW}" height="${PH}" fill="none" stroke="#999"/>`;
    for (let t = 0; t <= 4; t++) {
      const yv = y0 + ((y1 - y0) * t) / 4,
        xv = x0 + ((x1 - x0) * t) / 4;
      body += `<text x="${ox - 4}" y="${Y(yv) + 4}" font-size="10" text-anchor="end">${+yv.toPrecision(3)}</text>`;
      body += `<text x="${X(xv)}" y="${oy + PH + 14}" font-size="10" text-anchor="middle">${+xv.toPrecision(3)}</text>`;
    }
    body += `<text x="${ox + PW / 2}" y="${oy + PH + 30}" font-size="11" text-anchor="middle">reward evaluations (trajectories)</text>`;
    body += `<text transform="translate(${ox - 42},${oy + PH / 2}) rotate(-90)" font-size="11" text-anchor="middle">${esc(yLabel)}</text>`;
    p.series.forEach((s, si) => {
      const c = COLORS[si % COLORS.length];
      const up = s.x.map((x, i) => `${X(x).toFixed(1)},${Y(s.mean[i] + s.std[i]).toFixed(1)}`);
      const lo = s.x.map((x, i) => `${X(x).toFixed(1)},${Y(s.mean[i] - s.std[i]).toFixed(1)}`).reverse();
      body += `<polygon points="${[...up, ...lo].join(' ')}" fill="${c}" fill-opacity="0.15" stroke="none"/>`;
      body += `<polyline points="${s.x.map((x, i) => `${X(x).toFixed(1)},${Y(s.mean[i]).toFixed(1)}`).join(' ')}" fill="none" stroke="${c}" stroke-width="1.8"/>`;
      const lx = ox + (si % 2) * (PW / 2),
        ly = oy + PH + 48 + 16 * Math.floor(si / 2);
      body += `<rect x="${lx}" y="${ly - 8}" width="12" height="3" fill="${c}"/><text x="${lx + 16}" y="${ly - 3}" font-size="10">${esc(s.setting.split('/').pop()!)}</text>`;
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${body}</svg>\n`;
}

const num = (v: number, d: number) => (v !== 0 && Math.abs(v) < 10 ** -d ? v.toExponential(1) : v.toFixed(d));
const fmt = (m: { mean: number; std: number }, d = 3) => (Number.isFinite(m.mean) ? `${num(m.mean, d)} ± ${num(m.std, d)}` : '—');
const figDir = join(root, 'docs', 'figures');
const budgetArg = config.families.map((f) => `${f}=${config.budget[f]}`).join(',');
let command = `Command: \`npm run reproduce -- --family ${config.families.join(',')} --seeds ${seeds.join(',')} --jobs ${jobs} --budget ${budgetArg} --points ${config.points} --algos ${config.algos.join(',')}`;
command += `${config.families.includes('hypergrid') ? ` --rewards ${config.rewards.join(',')}` : ''}${config.families.includes('bitseq') ? ` --ks ${config.ks.join(',')} --bitseq-test-modes ${config.bitseqTestModes}` : ''}${config.families.includes('molecules') ? ` --betas ${config.betas.join(',')} --mol-test-size ${config.molTestSize}` : ''} --orders ${config.orders}\``;
command += `; ${runs.length} runs, ${seeds.length} seeds; total wall time ${(totalWall / 60).toFixed(1)} min over ${timing.invocations.length} invocation(s) (${jobs} run${jobs > 1 ? 's' : ''} at a time; each run's own it/s and peak RSS are in the tables).`;
const blocks: Partial<Record<Family, string>> = {};
for (const f of config.families) {
  const aggs = aggregate(f);
  const reduced = config.budget[f] < 1 ? ` — REDUCED BUDGET: ${config.budget[f]} of the paper's iterations` : '';
  const it = iterationsFor(f, config.budget);
  const groups = [...new Set(aggs.map((a) => a.setting.split('/')[1]))];
  const panels = groups.map((g) => ({ name: `${f} ${g}`, series: aggs.filter((a) => a.setting.split('/')[1] === g) }));
  const title = `${f}: ${it} iterations × ${PAPER_BATCH[f]} trajectories, mean ± std over seeds ${seeds.join(',')}${reduced}`;
  const file = `reproduce-${f}.svg`;
  if (args.docs) writeFileAtomic(join(figDir, file), svg(title, CURVE[f].label, panels));
  writeFileAtomic(join(out, file), svg(title, CURVE[f].label, panels));
  let md = `${command}\n\n#### ${f} (${it} of the paper's ${PAPER_ITERATIONS[f]} iterations × ${PAPER_BATCH[f]})${reduced ? ' — reduced budget' : ''}\n\n![${f}](figures/${file})\n\n`;
  md += `| setting | ${FINALS[f].join(' | ')} |\n|${' --- |'.repeat(FINALS[f].length + 1)}\n`;
  for (const a of aggs)
    md += `| ${a.setting} | ${FINALS[f].map((k) => fmt(a.finals[k], k.startsWith('it') || k === 'peakRssMB' || k.startsWith('modes') ? 1 : 4)).join(' | ')} |\n`;
  blocks[f] = reproduceBlock(f, md);
}
writeFileAtomic(join(out, 'results.md'), `${Object.values(blocks).join('\n\n')}\n`);
if (args.docs) {
  const docFile = join(root, 'docs', 'benchmarks.md');
  writeFileSync(docFile, mergeReproduceBlocks(readFileSync(docFile, 'utf8'), blocks));
}
process.stderr.write(
  `reproduce: finished in ${(wall / 60).toFixed(1)} min; tables in ${join(out, 'results.md')}${args.docs ? ' and docs/benchmarks.md, figures in docs/figures' : ''}\n`,
);
