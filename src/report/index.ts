import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/io.js';
import { UsageError, ioError } from '../core/errors.js';
import {
  DEFAULT_PANELS,
  FAMILY_PANELS,
  comparisonChart,
  equalCostTable,
  familyOf,
  familyTitle,
  operandsChart,
  panelsFor,
  pickX,
  runCharts,
  runLabels,
  type ChartDef,
  type Family,
} from './charts.js';
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

/**
 * The sub-runs of a folder by kind: one group per benchmark family, and otherwise by the x
 * axis their metrics share (`train` runs log training steps, benchmarks iterations), so a
 * folder mixing kinds gets one figure per kind instead of none.
 */
export function groupSubRuns(runs: RunData[]): { key: string; family?: Family; runs: RunData[] }[] {
  const groups = new Map<string, { key: string; family?: Family; runs: RunData[] }>();
  for (const r of runs) {
    const family = familyOf(r);
    const key = family ?? pickX(r.metrics)?.field ?? 'unplottable';
    if (!groups.has(key)) groups.set(key, { key, family, runs: [] });
    groups.get(key)!.runs.push(r);
  }
  return [...groups.values()];
}

/** Comparison figures and equal-cost tables for each kind of sub-run; what cannot be drawn is named in `skipped`. */
function subRunComparisons(runs: RunData[], withTables: boolean): { defs: ChartDef[]; tables: Table[]; skipped: string[] } {
  const groups = groupSubRuns(runs);
  const defs: ChartDef[] = [],
    tables: Table[] = [],
    skipped: string[] = [];
  for (const g of groups) {
    const names = runLabels(g.runs).join(', ');
    const id = groups.length === 1 ? (g.family ?? 'runs') : (g.family ?? `runs-${g.key}`);
    const def =
      g.key === 'unplottable'
        ? undefined
        : g.family
          ? comparisonChart(id, familyTitle(g.family, g.runs), g.runs, FAMILY_PANELS[g.family])
          : comparisonChart(
              id,
              `${g.runs.length} run(s) by ${g.key === 'step' ? 'training step' : g.key}: ${names}`,
              g.runs,
              DEFAULT_PANELS,
            );
    if (def) defs.push(def);
    else
      skipped.push(
        `no comparison figure for ${names}: ${g.key === 'unplottable' ? 'their metrics.jsonl have no x axis (step, iteration or reward evaluations) on every line' : 'no curve they share'}`,
      );
    const t = withTables ? equalCostTable(g.runs) : undefined;
    if (t) tables.push(t);
  }
  return { defs, tables, skipped };
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

  // comparison.json, when present, is the authoritative table; the computed ones fill in otherwise
  const cmp = subRunComparisons(run.subRuns, !run.comparison);
  warnings.push(...cmp.skipped);
  const runComparisonCharts = await renderAll(cmp.defs, warnings, 'cmp-');
  const runComparisonTables = cmp.tables;

  const opChart = run.accuracyByOperands ? operandsChart(run.accuracyByOperands) : undefined;
  const comparisonCharts = opChart ? await renderAll([opChart], warnings, 'ops-') : [];
  const pairedTable = run.paired
    ? {
        title:
          'Paired tests: best GFlowNet row vs SFT / PPO per test set (per-item majority-vote correctness averaged over seeds; exact two-sided sign test)',
        columns: ['testSet', 'gfn', 'against', 'diff', 'wins', 'losses', 'ties', 'items', 'p'],
        rows: run.paired,
      }
    : undefined;
  const samples = samplesTable(run);
  const extraTables = summaryTables(run.summary);
  const summary = run.summary ? summaryTable(run.summary) : undefined;

  const sections = [
    ...(warnings.length ? ['warnings'] : []),
    ...(summary ? ['summary'] : []),
    ...(charts.length ? ['curves'] : []),
    ...(runComparisonCharts.length || runComparisonTables.length ? ['runs-comparison'] : []),
    ...(run.comparison ? ['comparison'] : []),
    ...(samples ? ['samples'] : []),
    ...(run.configText ? ['config'] : []),
  ];
  const html = pageHtml({
    title: `flowtune report: ${run.label === basename(dir) ? basename(resolve(dir)) : `${run.label} — ${basename(resolve(dir))}`}`,
    subtitle: [
      resolve(dir),
      ...(run.metrics.length ? [`${run.metrics.length} metrics lines`] : []),
      ...(run.subRuns.length ? [`${run.subRuns.length} runs`] : []),
      `generated ${new Date().toISOString()}`,
    ].join(' · '),
    warnings,
    summary,
    charts,
    runComparisonCharts,
    runComparisonTables,
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
    if (rows)
      return {
        title: k === 'topModes' ? 'Samples: top modes found (summary.json)' : `Samples (summary.json ${k})`,
        table: { columns: unionKeys(rows), rows },
      };
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
  checkReportTarget(outFile);
  const report = await buildReport(dir);
  writeFileAtomic(outFile, report.html);
  return { ...report, file: outFile };
}

/**
 * A report replaces only a report: an existing file at the target must be a page this
 * command wrote (its <title> starts "flowtune report"), never a run's data or a user's file.
 */
export function checkReportTarget(file: string): void {
  if (!existsSync(file)) return;
  const refuse = (why: string) => new UsageError(`${file} ${why}; report does not overwrite files it did not write (choose another --out)`);
  if (statSync(file).isDirectory()) throw refuse('is a folder');
  let head = '';
  try {
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(8192);
    head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    closeSync(fd);
  } catch (err) {
    throw ioError('read', file, err);
  }
  if (!/^<!doctype html>[\s\S]*<title>flowtune report/i.test(head)) throw refuse('exists and is not a report flowtune wrote');
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
