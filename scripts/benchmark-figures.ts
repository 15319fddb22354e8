/**
 * One SVG per benchmark family (hypergrid, bitseq, molecules), comparing the objectives (and
 * MH where it ran) on a shared reward-evaluations axis, from run folders written by
 * `flowtune bench <family> --out DIR`:
 *   node dist/scripts/benchmark-figures.js --runs RUNS_ROOT [--runs MORE ...] --out docs/figures
 * Run folders are found up to three levels below each --runs root and grouped by the family
 * their summary.json names. The figure is the same one the run report draws for a folder of
 * runs: for every family whose runs share a parent folder, that folder also gets
 * comparison.json (each run at equal reward evaluations) and report.html.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../src/core/io.js';
import { equalCostTable, familyOf, readRun, renderSvg, subRunChart, writeReport, type Family, type RunData } from '../src/report/index.js';

const argv = process.argv.slice(2);
const roots = argv.flatMap((a, i) => (a === '--runs' && argv[i + 1] ? [argv[i + 1]] : []));
const outIdx = argv.indexOf('--out');
const out = outIdx >= 0 ? argv[outIdx + 1] : undefined;
if (!roots.length || !out) {
  process.stderr.write('usage: benchmark-figures --runs RUNS_ROOT [--runs ...] --out FOLDER\n');
  process.exit(2);
}

/** Folders holding both metrics.jsonl and summary.json, i.e. finished bench runs. */
function findRuns(dir: string, depth: number): string[] {
  if (existsSync(join(dir, 'metrics.jsonl')) && existsSync(join(dir, 'summary.json'))) return [dir];
  if (depth === 0) return [];
  let names: string[] = [];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isDirectory())
    .flatMap((p) => findRuns(p, depth - 1));
}

const byFamily = new Map<Family, RunData[]>();
for (const root of roots) {
  if (!existsSync(root)) {
    process.stderr.write(`benchmark-figures: ${root} does not exist\n`);
    process.exit(2);
  }
  for (const d of findRuns(root, 3)) {
    const run = readRun(d, { subRuns: false });
    const fam = familyOf(run);
    if (!fam) continue;
    byFamily.set(fam, [...(byFamily.get(fam) ?? []), run]);
  }
}
if (!byFamily.size) {
  process.stderr.write(`benchmark-figures: no bench run folders (metrics.jsonl + summary.json) under ${roots.join(', ')}\n`);
  process.exit(1);
}

mkdirSync(out, { recursive: true });
for (const [family, runs] of byFamily) {
  const chart = subRunChart(runs);
  if (!chart) {
    process.stderr.write(`benchmark-figures: ${family}: the runs share no x axis (reward evaluations); skipped\n`);
    continue;
  }
  const file = join(out, `${family}.svg`);
  writeFileAtomic(file, (await renderSvg(chart.spec)) + '\n');
  console.log(`${file}: ${chart.series.join(', ')} (${chart.points} points)`);
  const parents = new Set(runs.map((r) => dirname(r.dir)));
  if (parents.size === 1) {
    const parent = [...parents][0];
    const table = equalCostTable(runs);
    if (table) writeFileAtomic(join(parent, 'comparison.json'), JSON.stringify(table, null, 2) + '\n');
    const r = await writeReport(parent);
    console.log(`  ${r.file}: family report with comparison table`);
  }
}
