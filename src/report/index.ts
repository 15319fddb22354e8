import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/io.js';
import { UsageError } from '../core/errors.js';
import { comparisonChart, equalCostTable, familyTitle, operandsChart, panelsFor, runCharts, type ChartDef } from './charts.js';
import { pageHtml, summaryTable, type ChartHtml } from './html.js';
import { isRecord, readRun, unionKeys, type Row, type RunData, type Table } from './read-run.js';
import { renderSvg } from './render.js';

export { readRun, type RunData } from './read-run.js';
export { renderSvg } from './render.js';
export { comparisonChart, equalCostTable, familyOf, operandsChart, type ChartDef, type Family, type Panel } from './charts.js';

/**
 * The figure comparing the runs of a folder: for one benchmark family, its headline curves
 * (the same figure docs/figures/ holds); otherwise every comparable curve.
 */
export function subRunChart(runs: RunData[]): ChartDef | undefined {
  const { family, panels } = panelsFor(runs);
  return comparisonChart(family ?? 'runs', family ? familyTitle(family, runs) : `${runs.length} runs on a shared x axis`, runs, panels);
}

export interface Report {
  html: string;
  /** ids of the charts on the page, in order (one <svg> each). */
  charts: string[];
  /** ids of the page sections present. */
  sections: string[];
  warnings: string[];
}

/** Summary arrays that are tables of samples: molecules keep their best modes in topModes. */
const SAMPLE_KEYS = ['samples', 'topModes'];
/** Summary arrays already drawn as curves. */
const PLOTTED_KEYS = new Set(['curve']);

async function renderAll(defs: ChartDef[], warnings: string[], prefix: string): Promise<ChartHtml[]> {
  const out: ChartHtml[] = [];
  for (const d of defs) {
    try {
      out.push({ id: d.id, title: d.title, svg: await renderSvg(d.spec, `${prefix}${d.id}-`) });
    } catch (err) {
      // one bad chart must not cost the rest of the report
      warnings.push(`chart "${d.title}" could not be drawn: ${(err as Error).message}`);
    }
  }
  return out;
}

/** Builds the report page for a run folder (or a folder of runs) without writing it. */
export async function buildReport(dir: string): Promise<Report> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a folder`);
  const run = readRun(dir);
  const warnings = [...run.warnings, ...run.subRuns.flatMap((s) => s.warnings.map((w) => `${basename(s.dir)}: ${w}`))];
  const charts = await renderAll(runCharts(run), warnings, '');

  const cmp = run.subRuns.length ? subRunChart(run.subRuns) : undefined;
  const runComparisonCharts = cmp ? await renderAll([cmp], warnings, 'cmp-') : [];
  // comparison.json, when present, is the authoritative table; the computed one fills in otherwise
  const runComparisonTable = run.subRuns.length && !run.comparison ? equalCostTable(run.subRuns) : undefined;

  const opChart = run.accuracyByOperands ? operandsChart(run.accuracyByOperands) : undefined;
  const comparisonCharts = opChart ? await renderAll([opChart], warnings, 'ops-') : [];
  const pairedTable = run.paired ? { title: 'Paired tests: best GFlowNet row vs SFT / PPO per test set (per-item majority-vote correctness averaged over seeds; exact two-sided sign test)', columns: ['testSet', 'gfn', 'against', 'diff', 'wins', 'losses', 'ties', 'items', 'p'], rows: run.paired } : undefined;
  const samples = samplesTable(run);
  const extraTables = summaryTables(run.summary);
  const summary = run.summary ? summaryTable(run.summary) : undefined;

  const sections = [
    ...(warnings.length ? ['warnings'] : []),
    ...(summary ? ['summary'] : []),
    ...(charts.length ? ['curves'] : []),
    ...(runComparisonCharts.length || runComparisonTable ? ['runs-comparison'] : []),
    ...(run.comparison ? ['comparison'] : []),
    ...(samples ? ['samples'] : []),
    ...(run.configText ? ['config'] : []),
  ];
  const html = pageHtml({
    title: `flowtune report: ${run.label === basename(dir) ? basename(resolve(dir)) : `${run.label} — ${basename(resolve(dir))}`}`,
    subtitle: [resolve(dir), ...(run.metrics.length ? [`${run.metrics.length} metrics lines`] : []), ...(run.subRuns.length ? [`${run.subRuns.length} runs`] : []), `generated ${new Date().toISOString()}`].join(' · '),
    warnings,
    summary,
    charts,
    runComparisonCharts,
    runComparisonTable,
    comparison: run.comparison,
    comparisonCharts,
    pairedTable,
    samples,
    extraTables,
    configText: run.configText,
  });
  return { html, charts: [...charts, ...runComparisonCharts, ...comparisonCharts].map((c) => c.id), sections, warnings };
}

function samplesTable(run: RunData): { title: string; table: Table } | undefined {
  if (run.samples.length) return { title: 'Samples (samples.jsonl)', table: { columns: unionKeys(run.samples), rows: run.samples } };
  for (const k of SAMPLE_KEYS) {
    const rows = rowsOf(run.summary?.[k]);
    if (rows) return { title: k === 'topModes' ? 'Samples: top modes found (summary.json)' : `Samples (summary.json ${k})`, table: { columns: unionKeys(rows), rows } };
  }
  return undefined;
}

function summaryTables(summary: Row | undefined): { title: string; table: Table }[] {
  if (!summary) return [];
  const out: { title: string; table: Table }[] = [];
  for (const [k, v] of Object.entries(summary)) {
    if (SAMPLE_KEYS.includes(k) || PLOTTED_KEYS.has(k)) continue;
    const rows = rowsOf(v);
    if (rows) out.push({ title: `summary.json: ${k}`, table: { columns: unionKeys(rows), rows } });
  }
  return out;
}

function rowsOf(v: unknown): Row[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const rows = v.filter(isRecord);
  return rows.length ? rows : undefined;
}

/** Writes report.html (or `outFile`) for a run folder; returns the path and what it holds. */
export async function writeReport(dir: string, outFile = join(dir, 'report.html')): Promise<Report & { file: string }> {
  const report = await buildReport(dir);
  writeFileAtomic(outFile, report.html);
  return { ...report, file: outFile };
}

/**
 * For the end of a training or benchmark run: the run's results are already on disk, so a
 * report that fails to build is a warning on stderr, never a failed run.
 */
export async function writeReportSafe(dir: string): Promise<void> {
  try {
    const r = await writeReport(dir);
    process.stderr.write(`report: ${r.file}\n`);
  } catch (err) {
    process.stderr.write(`flowtune: warning: could not write ${join(dir, 'report.html')}: ${(err as Error).message}\n`);
  }
}
