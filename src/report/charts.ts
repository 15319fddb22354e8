import type { TopLevelSpec } from 'vega-lite';
import { num, type Row, type RunData, type Table } from './read-run.js';

/** One chart of a report: a vega-lite spec plus what the page says about it. */
export interface ChartDef {
  id: string;
  title: string;
  spec: TopLevelSpec;
  /** Series actually plotted (after dropping non-finite values), for tests and captions. */
  series: string[];
  points: number;
}

interface Axis {
  field: string;
  title: string;
}

/**
 * Candidate x axes, best first: benchmarks log `rewardEvaluations` on every line so that
 * objectives and MCMC compare at equal cost; LM training logs `step`.
 */
const X_AXES: Axis[] = [
  { field: 'rewardEvaluations', title: 'reward evaluations' },
  { field: 'step', title: 'training step' },
  { field: 'iteration', title: 'iteration' },
  { field: 'trajectories', title: 'trajectories' },
];

/** The first candidate axis that every row carries as a finite number. */
export function pickX(rows: Row[]): Axis | undefined {
  if (!rows.length) return undefined;
  return X_AXES.find((a) => rows.every((r) => num(r[a.field]) !== undefined));
}

/** Canonical objective order, so a colour means the same objective in every figure. */
export const ALGO_ORDER = ['tb', 'db', 'subtb', 'softdqn', 'mdqn', 'mh'];

export interface Point {
  x: number;
  y: number;
  series: string;
}

interface MetricDef {
  id: string;
  title: string;
  yTitle: string;
  /** Fields plotted as separate series (each only where present). */
  fields: { field: string; name: string }[];
  /** Log y-scale when all values are positive and span two decades (losses, TV near 0). */
  autoLog?: boolean;
  /** Only worth a chart when the value changes (e.g. an annealed reward temperature). */
  onlyIfVarying?: boolean;
}

/** Per-run curves, in page order. log Z and throughput are built separately (derived series). */
const METRICS: MetricDef[] = [
  { id: 'loss', title: 'Training loss', yTitle: 'loss', fields: [{ field: 'loss', name: 'loss' }], autoLog: true },
  { id: 'logr', title: 'Mean log-reward of sampled objects', yTitle: 'mean log R', fields: [{ field: 'meanLogR', name: 'mean log R' }] },
  {
    id: 'tv',
    title: 'Total variation to R/Z',
    yTitle: 'TV distance',
    fields: [
      { field: 'tvExact', name: 'exact TV (sampler law vs R/Z)' },
      { field: 'tvEmpirical', name: 'empirical TV (visited states)' },
    ],
    autoLog: true,
  },
  {
    id: 'l1',
    title: 'Empirical L1 error',
    yTitle: 'mean |p̂(x) − R(x)/Z|',
    fields: [{ field: 'l1Empirical', name: 'empirical L1' }],
    autoLog: true,
  },
  {
    id: 'modes',
    title: 'Modes found',
    yTitle: 'modes',
    fields: [
      { field: 'modesFound', name: 'modes found' },
      { field: 'modes', name: 'modes found' },
    ],
  },
  {
    id: 'acceptance',
    title: 'MH acceptance rate',
    yTitle: 'acceptance rate',
    fields: [{ field: 'acceptanceRate', name: 'acceptance rate' }],
  },
  { id: 'gradnorm', title: 'Gradient norm', yTitle: '‖∇‖', fields: [{ field: 'gradNorm', name: 'gradient norm' }], autoLog: true },
  {
    id: 'temperature',
    title: 'Reward temperature',
    yTitle: 'temperature',
    fields: [{ field: 'rewardTemperature', name: 'temperature' }],
    onlyIfVarying: true,
  },
];

function collect(rows: Row[], x: Axis | undefined, field: string, series: string): Point[] {
  const pts: Point[] = [];
  rows.forEach((r, i) => {
    const y = num(r[field]);
    const xv = x ? num(r[x.field]) : i + 1;
    if (y !== undefined && xv !== undefined) pts.push({ x: xv, y, series });
  });
  return pts;
}

function wantsLog(points: Point[]): boolean {
  if (!points.length) return false;
  let lo = Infinity,
    hi = -Infinity;
  for (const p of points) {
    if (p.y <= 0) return false;
    lo = Math.min(lo, p.y);
    hi = Math.max(hi, p.y);
  }
  return hi / lo >= 100;
}

interface LineOpts {
  title: string;
  xTitle: string;
  yTitle: string;
  points: Point[];
  log: boolean;
  /** Series order for the colour scale (also fixes colours across panels). */
  domain: string[];
  /** Reference series (exact values, estimates) drawn dashed. */
  dashed?: string[];
  width?: number;
  height?: number;
}

/** A line chart (with point symbols when sparse enough to read them). */
function lineLayer(o: LineOpts): Record<string, unknown> {
  const perSeries = o.points.length / Math.max(1, o.domain.length);
  const multi = o.domain.length > 1;
  return {
    title: o.title,
    width: o.width ?? 420,
    height: o.height ?? 220,
    data: { values: o.points },
    mark: { type: 'line', point: perSeries <= 120 ? { size: 28 } : false, clip: true, strokeWidth: 1.8 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xTitle },
      y: { field: 'y', type: 'quantitative', title: o.yTitle, scale: o.log ? { type: 'log' } : { zero: false } },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        scale: { domain: o.domain, scheme: 'tableau10' },
        legend: multi ? { orient: 'bottom', columns: Math.min(6, o.domain.length) } : null,
      },
      order: { field: 'x', type: 'quantitative' },
      ...(o.dashed?.length
        ? {
            strokeDash: {
              field: 'series',
              type: 'nominal',
              legend: null,
              scale: { domain: o.domain, range: o.domain.map((s) => (o.dashed?.includes(s) ? [6, 4] : [1, 0])) },
            },
          }
        : {}),
    },
  };
}

function chart(id: string, title: string, o: LineOpts): ChartDef {
  const spec = { background: 'white', padding: 8, ...lineLayer(o) } as unknown as TopLevelSpec;
  const series = o.domain.filter((s) => o.points.some((p) => p.series === s));
  return { id, title, spec, series, points: o.points.length };
}

/** The curves of one run: every known metric the run logged, plus log Z and throughput. */
export function runCharts(run: RunData): ChartDef[] {
  const rows = run.metrics;
  if (!rows.length) return [];
  const x = pickX(rows);
  const xTitle = x?.title ?? 'metrics line';
  const out: ChartDef[] = [];
  const push = (def: MetricDef, points: Point[]) => {
    if (!points.length) return;
    if (def.onlyIfVarying && points.every((p) => p.y === points[0].y)) return;
    const domain = [...new Set(points.map((p) => p.series))];
    out.push(
      chart(def.id, def.title, { title: def.title, xTitle, yTitle: def.yTitle, points, log: !!def.autoLog && wantsLog(points), domain }),
    );
  };
  for (const def of METRICS) {
    // `modes`/`modesFound` are alternative names; take the first field that has data
    const pts =
      def.id === 'modes'
        ? firstNonEmpty(def.fields.map((f) => collect(rows, x, f.field, f.name)))
        : def.fields.flatMap((f) => collect(rows, x, f.field, f.name));
    push(def, pts);
    if (def.id === 'loss') {
      const lz = logZPoints(run, x);
      if (lz.length) {
        const domain = [...new Set(lz.map((p) => p.series))];
        const title = domain.includes('exact log Z')
          ? 'log Z: learned vs exact'
          : domain.length > 1
            ? 'log Z: learned vs estimate'
            : 'Learned log Z';
        out.push(
          chart('logz', title, {
            title,
            xTitle,
            yTitle: 'log Z',
            points: lz,
            log: false,
            domain,
            dashed: domain.filter((d) => d !== 'learned log Z'),
          }),
        );
      }
    }
  }
  const tp = throughputPoints(rows, x);
  if (tp)
    out.push(
      chart('throughput', 'Throughput', {
        title: 'Throughput',
        xTitle,
        yTitle: tp.unit,
        points: tp.points,
        log: false,
        domain: [tp.points[0].series],
      }),
    );
  return out;
}

function firstNonEmpty(lists: Point[][]): Point[] {
  return lists.find((l) => l.length > 0) ?? [];
}

/**
 * Learned log Z with its reference: an exact value logged per line (logZTrue/logZExact) or
 * one in summary.json (the hypergrid oracle's logZTrue), drawn as a flat series across the
 * same x range; an estimate (logZEstimate) where only that is known.
 */
function logZPoints(run: RunData, x: Axis | undefined): Point[] {
  const rows = run.metrics;
  const learned = collect(rows, x, 'logZ', 'learned log Z');
  if (!learned.length) return [];
  const pts = [...learned];
  const perLine = [
    ['logZTrue', 'exact log Z'],
    ['logZExact', 'exact log Z'],
    ['logZEstimate', 'log Z estimate'],
  ].map(([f, n]) => collect(rows, x, f, n));
  const found = perLine.filter((l) => l.length);
  if (found.length) for (const l of found) pts.push(...l);
  else {
    const exact = num(run.summary?.logZTrue) ?? num(run.summary?.logZExact);
    const estimate = num(run.summary?.logZEstimate);
    const ref =
      exact !== undefined
        ? { v: exact, name: 'exact log Z' }
        : estimate !== undefined
          ? { v: estimate, name: 'log Z estimate' }
          : undefined;
    if (ref) for (const p of learned) pts.push({ x: p.x, y: ref.v, series: ref.name });
  }
  return pts;
}

/**
 * Samples per second: logged directly by LM training (samplesPerSec, a running average), or
 * derived per logging interval from cumulative counters over cumulative training seconds
 * (benchmarks log rewardEvaluations/trajectories and trainSeconds).
 */
function throughputPoints(rows: Row[], x: Axis | undefined): { unit: string; points: Point[] } | undefined {
  const direct = collect(rows, x, 'samplesPerSec', 'samples / s');
  if (direct.length) return { unit: 'samples / s', points: direct };
  const counter = ['rewardEvaluations', 'trajectories'].find((f) => rows.every((r) => num(r[f]) !== undefined));
  if (!counter || !rows.every((r) => num(r.trainSeconds) !== undefined)) return undefined;
  const unit = counter === 'rewardEvaluations' ? 'reward evaluations / s' : 'trajectories / s';
  const points: Point[] = [];
  let prevC = 0,
    prevT = 0;
  rows.forEach((r, i) => {
    const c = r[counter] as number,
      t = r.trainSeconds as number;
    const xv = x ? (r[x.field] as number) : i + 1;
    if (t > prevT && c >= prevC) points.push({ x: xv, y: (c - prevC) / (t - prevT), series: unit });
    prevC = c;
    prevT = t;
  });
  return points.length ? { unit, points } : undefined;
}

/** A panel of a multi-run comparison figure. */
export interface Panel {
  /** Metric field names, first present wins (e.g. modesFound | modes). */
  fields: string[];
  title: string;
  yTitle: string;
  log?: boolean | 'auto';
}

/** Unique, ordered labels for runs: the objective name, disambiguated by folder when repeated. */
export function runLabels(runs: RunData[]): string[] {
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
  return runs.map((r) => ((counts.get(r.label) ?? 0) > 1 ? `${r.label} (${r.dir.split(/[\\/]/).pop()})` : r.label));
}

/** Runs sorted into the canonical objective order (unknown labels last, alphabetically). */
export function sortRuns(runs: RunData[]): RunData[] {
  const rank = (r: RunData) => {
    const i = ALGO_ORDER.indexOf(r.label);
    return i < 0 ? ALGO_ORDER.length : i;
  };
  return [...runs].sort((a, b) => rank(a) - rank(b) || a.label.localeCompare(b.label) || a.dir.localeCompare(b.dir));
}

/** The x axis every run shares (reward evaluations for the benchmarks). */
export function commonX(runs: RunData[]): Axis | undefined {
  return X_AXES.find((a) => runs.every((r) => r.metrics.length > 0 && r.metrics.every((m) => num(m[a.field]) !== undefined)));
}

/**
 * Side-by-side panels, one line per run, on a shared x axis and one colour legend: the
 * figure that compares objectives at equal numbers of reward evaluations.
 */
export function comparisonChart(id: string, title: string, runsIn: RunData[], panels: Panel[]): ChartDef | undefined {
  const runs = sortRuns(runsIn.filter((r) => r.metrics.length));
  const x = commonX(runs);
  if (!runs.length || !x) return undefined;
  const labels = runLabels(runs);
  const used: Record<string, unknown>[] = [];
  const seriesSeen = new Set<string>();
  let points = 0;
  for (const p of panels) {
    const pts: Point[] = [];
    runs.forEach((r, i) => {
      const field = p.fields.find((f) => r.metrics.some((m) => num(m[f]) !== undefined));
      if (field) pts.push(...collect(r.metrics, x, field, labels[i]));
    });
    if (!pts.length) continue;
    for (const q of pts) seriesSeen.add(q.series);
    points += pts.length;
    const log = p.log === 'auto' ? wantsLog(pts) : !!p.log;
    const layer = lineLayer({
      title: p.title,
      xTitle: x.title,
      yTitle: p.yTitle,
      points: pts,
      log,
      domain: labels,
      width: 300,
      height: 210,
    });
    // identical legend settings on every panel: vega-lite merges a shared colour scale's
    // legends into one, drawn once below the row of panels
    (layer.encoding as Record<string, Record<string, unknown>>).color.legend = { orient: 'bottom', columns: labels.length, title: null };
    used.push(layer);
  }
  if (!used.length) return undefined;
  const spec = {
    background: 'white',
    padding: 8,
    title: { text: title, fontSize: 14 },
    hconcat: used,
    resolve: { scale: { color: 'shared' } },
  } as unknown as TopLevelSpec;
  return { id, title, spec, series: labels.filter((l) => seriesSeen.has(l)), points };
}

/** Panels for a folder of sub-runs: every comparable curve that at least one run logged. */
export const DEFAULT_PANELS: Panel[] = [
  { fields: ['tvExact'], title: 'Exact TV to R/Z', yTitle: 'TV', log: 'auto' },
  { fields: ['l1Empirical'], title: 'Empirical L1', yTitle: 'mean |p̂ − R/Z|', log: 'auto' },
  { fields: ['modesFound', 'modes'], title: 'Modes found', yTitle: 'modes' },
  { fields: ['meanLogR'], title: 'Mean log-reward', yTitle: 'mean log R' },
  { fields: ['logZ'], title: 'Learned log Z', yTitle: 'log Z' },
  { fields: ['loss'], title: 'Training loss', yTitle: 'loss', log: 'auto' },
];

export type Family = 'hypergrid' | 'bitseq' | 'molecules';

/** Which benchmark a run belongs to, from its summary.json (hypergrid summaries carry ndim/height). */
export function familyOf(run: RunData): Family | undefined {
  const s = run.summary;
  if (!s) return undefined;
  if (s.benchmark === 'bitseq' || s.benchmark === 'molecules') return s.benchmark;
  if (num(s.ndim) !== undefined && num(s.height) !== undefined) return 'hypergrid';
  return undefined;
}

/** The curves that carry each family's headline result (docs/design.md §5). */
export const FAMILY_PANELS: Record<Family, Panel[]> = {
  hypergrid: [
    { fields: ['tvExact'], title: 'Exact TV between sampler law and R/Z', yTitle: 'TV', log: 'auto' },
    { fields: ['l1Empirical'], title: 'Empirical L1 (last 200k visited states)', yTitle: 'mean |p̂ − R/Z|', log: 'auto' },
  ],
  bitseq: [
    { fields: ['modesFound'], title: 'Modes found (Hamming radius)', yTitle: 'modes of 60' },
    { fields: ['meanLogR'], title: 'Mean log-reward of the batch', yTitle: 'mean log R' },
  ],
  molecules: [
    { fields: ['modes'], title: 'Tanimoto-separated modes', yTitle: 'modes' },
    { fields: ['meanLogR'], title: 'Mean log-reward of the batch', yTitle: 'mean log R' },
  ],
};

/** A heading naming the family and its size, e.g. "hypergrid 4-D, H = 8 (standard)". */
export function familyTitle(family: Family, runs: RunData[]): string {
  const s = runs.find((r) => r.summary)?.summary ?? {};
  const algos = sortRuns(runs)
    .map((r) => r.label)
    .join(', ');
  const size =
    family === 'hypergrid'
      ? `hypergrid ${s.ndim}-D, H = ${s.height} (${s.reward ?? 'standard'})`
      : family === 'bitseq'
        ? `bit sequences n = ${s.n}, k = ${s.k}, β = ${s.beta}`
        : `molecules (naphthalene fragments), β = ${s.beta}`;
  return `${size}: ${algos} at equal reward evaluations`;
}

/** Panels for comparing a set of runs: the family's headline curves when they share one. */
export function panelsFor(runs: RunData[]): { family?: Family; panels: Panel[] } {
  const fams = new Set(runs.map(familyOf));
  const family = fams.size === 1 ? [...fams][0] : undefined;
  return family ? { family, panels: FAMILY_PANELS[family] } : { panels: DEFAULT_PANELS };
}

/** End-of-run numbers from summary.json (the density-estimate correlations are only computed there). */
const END_FIELDS: [string, string][] = [
  ['spearman', 'Spearman log R vs log P̂ (end)'],
  ['pearson', 'Pearson log R vs log P̂ (end)'],
  ['rewardEvaluations', 'reward evaluations (end)'],
  ['seconds', 'train s (end)'],
];

/** Metrics worth a column in the equal-cost table, in column order. */
const TABLE_FIELDS: [string, string][] = [
  ['tvExact', 'exact TV'],
  ['tvEmpirical', 'empirical TV'],
  ['l1Empirical', 'empirical L1'],
  ['modesFound', 'modes found'],
  ['modes', 'modes found'],
  ['meanLogR', 'mean log R'],
  ['logZ', 'log Z'],
  ['loss', 'loss'],
  ['acceptanceRate', 'acceptance'],
];

/**
 * Each run's metrics at the same cost: the budget is the smallest final x among the runs
 * (MH spends fewer reward evaluations per iteration than a GFlowNet, since a proposal off
 * the grid costs none), and each run contributes its last logged line at or below it.
 */
export function equalCostTable(runsIn: RunData[]): Table | undefined {
  const runs = sortRuns(runsIn.filter((r) => r.metrics.length));
  const x = commonX(runs);
  if (!runs.length || !x) return undefined;
  const budget = Math.min(...runs.map((r) => Math.max(...r.metrics.map((m) => m[x.field] as number))));
  const labels = runLabels(runs);
  const present = TABLE_FIELDS.filter(([f]) => runs.some((r) => r.metrics.some((m) => num(m[f]) !== undefined)));
  // modes/modesFound are one column
  const cols: [string, string][] = [];
  for (const c of present) if (!cols.some(([, n]) => n === c[1])) cols.push(c);
  const ends = END_FIELDS.filter(([f]) => runs.some((r) => num(r.summary?.[f]) !== undefined));
  const rows: Row[] = runs.map((r, i) => {
    const at = [...r.metrics].reverse().find((m) => (m[x.field] as number) <= budget);
    const row: Row = { run: labels[i], [x.title]: at ? (at[x.field] as number) : null };
    for (const [, name] of cols) {
      const alt = TABLE_FIELDS.filter(([, n]) => n === name).map(([g]) => g);
      row[name] = (at ? alt.map((g) => num(at[g])).find((q) => q !== undefined) : undefined) ?? null;
    }
    for (const [f, name] of ends) row[name] = num(r.summary?.[f]) ?? null;
    return row;
  });
  return {
    title: `At equal cost: each run's last logged line with ${x.title} ≤ ${budget}`,
    columns: ['run', x.title, ...cols.map(([, n]) => n), ...ends.map(([, n]) => n)],
    rows,
  };
}

/**
 * Accuracy against the number of operands (a compare run's comparison.json
 * `accuracyByOperands`: one point per method and operand count, mean over seeds with its sd):
 * lines with points, and ± sd error bars where there are several seeds. The training range
 * and the out-of-distribution counts share one axis so the drop past the training range shows.
 */
export function operandsChart(pointsIn: Row[]): ChartDef | undefined {
  const pts = pointsIn
    .map((p) => ({ series: String(p.method), x: num(p.operands), y: num(p.accuracy), sd: num(p.sd) }))
    .filter((p): p is { series: string; x: number; y: number; sd: number | undefined } => p.x !== undefined && p.y !== undefined);
  if (!pts.length) return undefined;
  const domain = [...new Set(pts.map((p) => p.series))];
  const values = pts.map((p) => ({ ...p, lo: p.y - (p.sd ?? 0), hi: p.y + (p.sd ?? 0) }));
  const xs = [...new Set(pts.map((p) => p.x))].sort((a, b) => a - b);
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain, scheme: 'tableau10' }, legend: { orient: 'right' } };
  const x = {
    field: 'x',
    type: 'quantitative',
    title: 'number of operands',
    axis: { values: xs, format: 'd' },
    scale: { domain: [xs[0] - 0.2, xs[xs.length - 1] + 0.2] },
  };
  const layers: Record<string, unknown>[] = [
    {
      mark: { type: 'line', point: { size: 40 }, strokeWidth: 1.8 },
      encoding: { x, y: { field: 'y', type: 'quantitative', title: 'majority-vote accuracy', scale: { domain: [0, 1] } }, color },
    },
  ];
  if (pts.some((p) => p.sd !== undefined))
    layers.push({
      mark: { type: 'rule', strokeWidth: 1.2, clip: true },
      encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color },
    });
  const spec = {
    background: 'white',
    padding: 8,
    title: 'Accuracy vs number of operands (mean ± sd over seeds)',
    width: 420,
    height: 260,
    data: { values },
    layer: layers,
  } as unknown as TopLevelSpec;
  return { id: 'operands', title: 'Accuracy vs number of operands', spec, series: domain, points: pts.length };
}
