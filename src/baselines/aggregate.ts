/**
 * From method × seed cells to the comparison table: mean ± sample sd over seeds for every
 * metric, majority-vote accuracy by number of operands (arithmetic), and a paired test of the
 * best GFlowNet row against each SFT and PPO row per test set.
 *
 * Paired test: for every item of a test set, its majority-vote correctness is averaged over
 * the method's seeds; the best GFlowNet row and the reference row are compared item by item
 * with the exact two-sided sign test (wins = items where the GFlowNet's mean correctness is
 * higher). With one seed this is the exact McNemar test. It asks whether the difference is
 * consistent across questions, not only across seeds: with 3 seeds a t-test over seeds would
 * have 2 degrees of freedom, while the 500 items of a test set are paired by construction.
 */
import { mean, pairedSignTest, sampleSd, type PairedItems } from './stats.js';

export interface CellResult {
  method: string;
  seed: number;
  metrics: Record<string, number | null>;
  /** arithmetic: per test set label, majority-vote correctness of each item (file order) */
  correct: Record<string, boolean[]>;
  /** arithmetic: majority-vote [correct, total] by number of operands, over every test set */
  byOperands: Record<string, [number, number]>;
  runDir: string | null;
  trainSteps: number | null;
  trainSeconds: number | null;
  evalSeconds: number;
  resumedFrom: number | null;
  /** the eval section the cell was evaluated with (absent in cells of older runs) */
  evalSettings?: Record<string, unknown>;
}

export interface MethodInfo {
  name: string;
  /** base | sft | reinforce | ppo | gfn */
  kind: string;
  /** shown kind: gfn-tb, ppo, ... */
  label: string;
  decode: string;
}

export interface AggregateRow {
  method: string;
  kind: string;
  decode: string;
  seeds: number;
  [column: string]: string | number | null;
}

export interface PairedTest extends PairedItems {
  testSet: string;
  gfn: string;
  against: string;
  items: number;
  seeds: { gfn: number; against: number };
}

export interface OperandPoint {
  method: string;
  operands: number;
  accuracy: number;
  sd: number | null;
  items: number;
  seeds: number;
}

const sdKey = (k: string) => `${k} sd`;

/** Mean and sd over seeds of each metric; `columns` lists the metric keys in table order. */
export function aggregateRows(methods: MethodInfo[], cells: CellResult[], metricKeys: string[]): AggregateRow[] {
  return methods.map((m) => {
    const cs = cells.filter((c) => c.method === m.name);
    const row: AggregateRow = { method: m.name, kind: m.label, decode: m.decode, seeds: cs.length };
    for (const k of metricKeys) {
      const vs = cs.map((c) => c.metrics[k]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      row[k] = vs.length ? mean(vs) : null;
      row[sdKey(k)] = vs.length ? sampleSd(vs) : null;
    }
    const sum = (f: (c: CellResult) => number | null) => (cs.some((c) => f(c) !== null) ? cs.reduce((s, c) => s + (f(c) ?? 0), 0) : null);
    row['train s'] = sum((c) => c.trainSeconds);
    row['eval s'] = sum((c) => c.evalSeconds);
    return row;
  });
}

export { sdKey };

/** Majority-vote accuracy by number of operands: mean ± sd over seeds per method. */
export function accuracyByOperands(methods: MethodInfo[], cells: CellResult[]): OperandPoint[] {
  const out: OperandPoint[] = [];
  for (const m of methods) {
    const cs = cells.filter((c) => c.method === m.name);
    const ns = [...new Set(cs.flatMap((c) => Object.keys(c.byOperands)))].map(Number).sort((a, b) => a - b);
    for (const n of ns) {
      const counts = cs.map((c) => c.byOperands[n]).filter((e) => e !== undefined);
      const accs = counts.map(([right, total]) => right / total);
      out.push({ method: m.name, operands: n, accuracy: mean(accs), sd: sampleSd(accs), items: counts[0][1], seeds: accs.length });
    }
  }
  return out;
}

/** Per-item majority-vote correctness averaged over a method's seeds. */
function itemScores(cells: CellResult[], method: string, label: string): number[] | null {
  const cs = cells.filter((c) => c.method === method && c.correct[label]);
  if (!cs.length) return null;
  const n = cs[0].correct[label].length;
  if (cs.some((c) => c.correct[label].length !== n)) return null;
  return Array.from({ length: n }, (_, i) => cs.reduce((s, c) => s + (c.correct[label][i] ? 1 : 0), 0) / cs.length);
}

/**
 * Per test set: the GFlowNet method with the highest mean `<label> vote acc`, against every
 * method of kind sft and ppo (the paper's two baselines).
 */
export function pairedTests(methods: MethodInfo[], cells: CellResult[], rows: AggregateRow[], labels: string[]): PairedTest[] {
  const out: PairedTest[] = [];
  const gfns = methods.filter((m) => m.kind === 'gfn');
  const refs = methods.filter((m) => m.kind === 'sft' || m.kind === 'ppo');
  for (const label of labels) {
    const key = `${label} vote acc`;
    let best: MethodInfo | null = null;
    let bestAcc = -Infinity;
    for (const g of gfns) {
      const acc = rows.find((r) => r.method === g.name)?.[key];
      if (typeof acc === 'number' && acc > bestAcc) {
        best = g;
        bestAcc = acc;
      }
    }
    if (!best) continue;
    const gfn = best.name;
    const a = itemScores(cells, best.name, label);
    if (!a) continue;
    for (const r of refs) {
      const b = itemScores(cells, r.name, label);
      if (!b || b.length !== a.length) continue;
      out.push({
        testSet: label,
        gfn,
        against: r.name,
        items: a.length,
        seeds: { gfn: cells.filter((c) => c.method === gfn).length, against: cells.filter((c) => c.method === r.name).length },
        ...pairedSignTest(a, b),
      });
    }
  }
  return out;
}

/** Paired-test columns on the reference rows: Δ = best GFlowNet − this row, and the sign-test p. */
export function addPairedColumns(rows: AggregateRow[], tests: PairedTest[]): string[] {
  const cols: string[] = [];
  for (const t of tests) {
    const d = `${t.testSet} Δ best gfn`,
      p = `${t.testSet} sign p`;
    if (!cols.includes(d)) cols.push(d, p);
    const row = rows.find((r) => r.method === t.against);
    if (row) {
      row[d] = t.diff;
      row[p] = t.p;
    }
  }
  for (const r of rows) for (const c of cols) r[c] ??= null;
  return cols;
}
