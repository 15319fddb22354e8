/**
 * `flowtune compare`: every method on the same frozen model, the same sample budget (K Z
 * per item) and the same evaluation; one table of method × metric, written as
 * comparison.csv and comparison.json in the output folder.
 *
 * Methods: base (the base LM with no head: ancestral sampling at a temperature, greedy,
 * beam search of width K), sft (the head trained on gold rationales), reinforce (the head
 * trained to maximize log R), gfn (LmTrainer: TB, SubTB, SoftDQN, M-DQN). Every trained
 * method starts from the same training config (`train`, plus `set`, plus its own `set`).
 */
/**
 * `flowtune compare`: every method on the same frozen model, the same sample budget (K Z
 * per item) and the same evaluation, over a list of seeds; one table of method × metric
 * (mean ± sd over seeds) with a paired test of the best GFlowNet row against SFT and PPO per
 * test set, written as comparison.csv / comparison.json and report.html in the output folder.
 *
 * Methods: base (the base LM with no head: ancestral sampling at a temperature, greedy,
 * beam search of width K), sft (the head trained on gold rationales), reinforce and ppo (the
 * head trained to maximize log R), gfn (LmTrainer: TB, SubTB, SoftDQN, M-DQN). Every trained
 * method starts from the same training config (`train`, plus `set`, plus its own `set`).
 *
 * Seed s sets the training seed (`seed=s`) and the evaluation's sampling seed (eval.seed + s).
 * A base model decoded greedily or by beam search is deterministic: it is evaluated once.
 *
 * Layout: OUT/methods/<name>/seed-<s>/ holds the run folder of that training (config.yaml,
 * checkpoints/, metrics.jsonl), eval-<test set>.jsonl and result.json, which is written last:
 * with --resume, a cell with result.json is read back, not redone; a cell whose training
 * was cut off continues from its latest checkpoint (methods.ts). With --reeval the eval section
 * may differ from the one the folder was started with: a finished cell whose result.json
 * records other eval settings keeps its training and is evaluated again.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { loadConfig } from '../finetune/config-loader.js';
import { readTrainConfig } from '../finetune/run.js';
import { trainConfigSchema, type TrainConfig } from '../finetune/schema.js';
import { writeFileAtomic } from '../core/io.js';
import { acquireRunLock } from '../core/lock.js';
import { resolveModelDir } from '../lm/resolve.js';
import { parseQuery } from '../text/arithmetic.js';
import { writeReport } from '../report/index.js';
import type { DecodeSpec } from '../tasks/decode.js';
import { describeDecode } from '../tasks/decode.js';
import { evaluateTask, metricColumns, type EvalPart } from '../tasks/evaluate.js';
import type { ArithItemResult } from '../tasks/arithmetic.js';
import { loadBasePolicy, loadRunPolicy, releasePolicy, type LoadedPolicy } from '../tasks/policy.js';
import { trainMethod } from './methods.js';
import { PPO_DEFAULTS } from './ppo.js';
import {
  accuracyByOperands,
  addPairedColumns,
  aggregateRows,
  pairedTests,
  sdKey,
  type AggregateRow,
  type CellResult,
  type MethodInfo,
  type OperandPoint,
  type PairedTest,
} from './aggregate.js';

const methodSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
  kind: z.enum(['base', 'sft', 'reinforce', 'ppo', 'gfn']),
  /** gfn: tb | subtb | softdqn | mdqn (else the training config's) */
  objective: z.enum(['tb', 'subtb', 'softdqn', 'mdqn']).optional(),
  decode: z.enum(['sample', 'greedy', 'beam']).default('sample'),
  temperature: z.number().positive().default(1),
  /** overrides of the training config for this method (key=value, as --set) */
  set: z.array(z.string()).default([]),
  /**
   * start from the trained adapter of an earlier method in the list, same seed (adapter.init),
   * e.g. a GFlowNet started from the SFT run; its budget adds to that method's
   */
  init: z.string().optional(),
  /** reinforce / ppo: KL penalty coefficient β to the base LM (reinforce: default 0; ppo: default 0.05) */
  klCoef: z.number().min(0).optional(),
  /** ppo: clipped-ratio ε, passes and minibatches per sampled batch, rationales per question */
  ppo: z
    .strictObject({
      clip: z.number().positive().lt(1).optional(),
      epochs: z.number().int().min(1).optional(),
      minibatches: z.number().int().min(1).optional(),
      groupSize: z.number().int().min(1).optional(),
    })
    .optional(),
});

export const compareSchema = z.strictObject({
  task: z.enum(['arithmetic', 'infill', 'subj']),
  /** the training config every trained method starts from (model, task, z, reward, head, optim, steps) */
  train: z.string().min(1),
  set: z.array(z.string()).default([]),
  /** every method runs once per seed (default: the training config's seed) */
  seeds: z.array(z.number().int().min(0)).min(1).optional(),
  eval: z
    .strictObject({
      data: z.array(z.string()).default([]),
      limit: z.number().int().min(1).optional(),
      offset: z.number().int().min(0).optional(),
      samples: z.number().int().min(1).default(10),
      seed: z.number().int().min(0).default(0),
      maxChars: z.number().int().min(8).default(80),
    })
    .prefault({}),
  methods: z.array(methodSchema).min(1),
});

export type CompareConfig = z.infer<typeof compareSchema>;
type MethodConfig = CompareConfig['methods'][number];

export interface Comparison {
  task: string;
  config: string;
  samples: number;
  seeds: number[];
  /** table columns: method, kind, decode, seeds, each metric and its sd, paired-test columns, times */
  columns: string[];
  /** the metric columns (means; `<metric> sd` holds the sample sd over seeds) */
  metrics: string[];
  rows: AggregateRow[];
  paired: PairedTest[];
  accuracyByOperands: OperandPoint[];
  /** every method × seed: its metrics and times (per-item results are in the cell folders) */
  cells: Omit<CellResult, 'correct' | 'evalSettings'>[];
  methods: {
    name: string;
    kind: string;
    objective: string | null;
    decode: string;
    seeds: number[];
    trainSteps: number | null;
    trainSeconds: number | null;
    evalSeconds: number;
    seconds: number;
  }[];
  /** wall time of this invocation */
  seconds: number;
  /** train + eval time of every cell, over all invocations (a resumed run adds its earlier cells) */
  cellSeconds: number;
}

export function readCompareConfig(file: string, sets: string[], seeds?: number[]): CompareConfig {
  const c = loadConfig(file, sets, compareSchema);
  if (seeds) c.seeds = seeds;
  const names = new Set<string>();
  for (const m of c.methods) {
    if (names.has(m.name)) throw new UsageError(`${file}: method name ${m.name} appears twice`);
    names.add(m.name);
    if (m.objective && m.kind !== 'gfn') throw new UsageError(`${file}: method ${m.name}: objective applies to kind gfn only`);
    if (m.ppo && m.kind !== 'ppo') throw new UsageError(`${file}: method ${m.name}: ppo settings apply to kind ppo only`);
    if (m.klCoef !== undefined && m.kind !== 'ppo' && m.kind !== 'reinforce')
      throw new UsageError(`${file}: method ${m.name}: klCoef applies to kinds reinforce and ppo only`);
    if (m.init !== undefined) {
      const from = c.methods.find((x) => x.name === m.init);
      if (m.kind === 'base') throw new UsageError(`${file}: method ${m.name}: init applies to trained methods only`);
      if (!from || !names.has(m.init) || m.init === m.name)
        throw new UsageError(`${file}: method ${m.name}: init ${m.init} must name a method earlier in the list`);
      if (from.kind === 'base')
        throw new UsageError(`${file}: method ${m.name}: init ${m.init} is a base method (nothing trained to start from)`);
    }
  }
  if (c.seeds && new Set(c.seeds).size !== c.seeds.length) throw new UsageError(`${file}: seeds ${c.seeds.join(', ')} repeat a seed`);
  return c;
}

/** `--seeds 0,1,2` → [0, 1, 2]. */
export function parseSeeds(text: string): number[] {
  const seeds = text.split(',').map((s) => s.trim());
  if (!seeds.length || seeds.some((s) => !/^\d+$/.test(s)))
    throw new UsageError(`--seeds expects non-negative integers separated by commas (got ${text})`);
  return seeds.map(Number);
}

/** A finished cell's result.json (metrics written as null stay null). */
function readCell(file: string): CellResult {
  const done = JSON.parse(readFileSync(file, 'utf8')) as CellResult;
  done.metrics = Object.fromEntries(Object.entries(done.metrics).map(([k, v]) => [k, v ?? null]));
  return done;
}

/** OUT/methods/<name>/seed-<s>: one method × seed (its run folder when trained). */
const cellDir = (outDir: string, name: string, seed: number) => join(outDir, 'methods', name, `seed-${seed}`);

const isDeterministic = (m: MethodConfig) => m.kind === 'base' && m.decode !== 'sample';

function decodeOf(m: MethodConfig): DecodeSpec {
  return m.decode === 'sample' ? { kind: 'sample', temperature: m.temperature } : { kind: m.decode };
}

/** Every file a comparison reads, before any work: a missing one is a usage error, not a crash an hour in. */
async function preflight(c: CompareConfig, cfgs: TrainConfig[]): Promise<void> {
  const need = (f: string, what: string) => {
    if (!existsSync(f)) throw new UsageError(`${what} ${f} does not exist`);
  };
  for (const f of c.eval.data) need(f, 'eval.data file');
  for (const [i, m] of c.methods.entries()) {
    if (m.kind === 'base') continue;
    const t = cfgs[i].task;
    for (const f of [...t.train, ...t.pool]) need(f, `training data (method ${m.name})`);
    if (t.sentences) need(t.sentences, `training sentences (method ${m.name})`);
  }
  for (const model of new Set(cfgs.map((x) => x.model))) {
    // "models/arith-weak" also reads as a hub id (owner/name): a missing folder under an existing
    // local folder is a missing model folder, not something to fetch
    if (!existsSync(model) && dirname(model) !== '.' && existsSync(dirname(model)))
      throw new UsageError(`model folder ${model} does not exist`);
    await resolveModelDir(model);
  }
}

type OpenMode = 'fresh' | 'resume' | 'reeval';
interface CompareState {
  config: string;
  compare: CompareConfig;
  seeds: number[];
  train: TrainConfig[][];
}

/**
 * A state as JSON with every default filled in: a folder started by an earlier flowtune whose
 * schemas had fewer keys reads the same as one started now. `withEval: false` leaves the eval
 * section out (what --reeval keeps fixed).
 */
function stateKey(state: CompareState, withEval: boolean): string {
  const compare = compareSchema.parse(state.compare);
  return JSON.stringify({
    config: state.config,
    compare: withEval ? compare : { ...compare, eval: null },
    seeds: state.seeds,
    train: state.train.map((row) => row.map((cfg) => trainConfigSchema.parse(cfg))),
  });
}

/**
 * Opens the output folder: fresh, or (resume) one started with the very same configs, or
 * (reeval) one started with the same configs up to the eval section, which is then replaced.
 */
function prepareOut(outDir: string, state: CompareState, mode: OpenMode): void {
  const stateFile = join(outDir, 'compare-state.json');
  // checked before anything is created: a mistyped --out with --resume leaves no empty folder behind
  if (mode !== 'fresh' && !existsSync(stateFile))
    throw new UsageError(`${outDir} holds no comparison to ${mode === 'resume' ? 'resume' : 're-evaluate'} (no compare-state.json)`);
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create ${outDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // one writer per comparison folder (its run folders under methods/ are covered by it)
  acquireRunLock(outDir);
  const text = JSON.stringify(state, null, 2) + '\n';
  if (mode !== 'fresh') {
    let old: CompareState;
    try {
      old = JSON.parse(readFileSync(stateFile, 'utf8')) as CompareState;
      stateKey(old, false);
    } catch {
      throw new UsageError(`${stateFile} is not a comparison state this flowtune can read`);
    }
    if (mode === 'resume' && stateKey(old, true) !== stateKey(state, true))
      throw new UsageError(
        `${outDir} was started with other settings (configs or seeds differ); resume with the same config, --set and --seeds, or choose another --out`,
      );
    if (mode === 'reeval') {
      if (stateKey(old, false) !== stateKey(state, false))
        throw new UsageError(
          `${outDir} was started with other training settings (configs, methods or seeds differ); --reeval may change only the eval section`,
        );
      writeFileAtomic(stateFile, text);
    }
    return;
  }
  if (
    existsSync(join(outDir, 'comparison.json')) ||
    existsSync(stateFile) ||
    (existsSync(join(outDir, 'methods')) && readdirSync(join(outDir, 'methods')).length > 0)
  )
    throw new UsageError(`${outDir} already holds a comparison; use --resume to continue it or choose another --out`);
  writeFileAtomic(stateFile, text);
}

/** Majority-vote [correct, total] by number of operands over the arithmetic test sets of one evaluation. */
function operandCounts(parts: EvalPart[]): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const p of parts)
    for (const it of p.items as ArithItemResult[]) {
      const n = parseQuery(it.query).operands.length;
      const e = (out[n] ??= [0, 0]);
      e[0] += it.voteCorrect ? 1 : 0;
      e[1]++;
    }
  return out;
}

/**
 * Arithmetic: `<test set> distinct correct Z` after each `<test set> distinct Z`, the mean over
 * items of the number of distinct rationales with the right answer among the K samples, over
 * K (diversity that is not noise: more distinct correct rationales).
 */
function withDistinctCorrect(metrics: Record<string, number | null>, parts: EvalPart[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(metrics)) {
    out[k] = v;
    const p = parts.find((q) => k === `${q.label} distinct Z`);
    if (!p) continue;
    const items = p.items as ArithItemResult[];
    out[`${p.label} distinct correct Z`] =
      items.reduce((s, it) => s + new Set(it.samples.filter((x) => x.answer === it.answer).map((x) => x.z)).size / it.samples.length, 0) /
      items.length;
  }
  return out;
}

export async function runCompare(
  file: string,
  c: CompareConfig,
  outDir: string,
  o: { quiet?: boolean; log?: (s: string) => void; resume?: boolean; reeval?: boolean } = {},
): Promise<Comparison> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const seeds = c.seeds ?? [readTrainConfig(c.train, c.set).seed];
  // validate every method × seed training config before any work
  const sets = (m: MethodConfig, seed: number) => [
    ...c.set,
    ...m.set,
    ...(m.objective ? [`objective=${m.objective}`] : []),
    ...(m.init ? [`adapter.init=${JSON.stringify(cellDir(outDir, m.init, seed))}`] : []),
    `seed=${seed}`,
  ];
  const cfgs = c.methods.map((m) => seeds.map((s) => readTrainConfig(c.train, sets(m, s))));
  await preflight(
    c,
    cfgs.map((x) => x[0]),
  );
  prepareOut(outDir, { config: file, compare: c, seeds, train: cfgs }, o.reeval ? 'reeval' : o.resume ? 'resume' : 'fresh');

  const infos: MethodInfo[] = c.methods.map((m, i) => ({
    name: m.name,
    kind: m.kind,
    label: m.kind === 'gfn' ? `gfn-${cfgs[i][0].objective}` : m.kind,
    decode: describeDecode(decodeOf(m)),
  }));
  const cells: CellResult[] = [];
  const metricKeys = new Set<string>();
  for (const [i, m] of c.methods.entries()) {
    const decode = decodeOf(m);
    let base: LoadedPolicy | null = null;
    for (const [si, seed] of seeds.entries()) {
      if (si > 0 && isDeterministic(m)) break;
      const cfg = cfgs[i][si];
      const tag = seeds.length > 1 ? `${m.name} seed ${seed}` : m.name;
      const dir = cellDir(outDir, m.name, seed);
      const resultFile = join(dir, 'result.json');
      const prev = existsSync(resultFile) ? readCell(resultFile) : null;
      // --reeval: a finished cell evaluated with other eval settings keeps its training and is evaluated again
      const again = prev !== null && o.reeval === true && JSON.stringify(prev.evalSettings ?? null) !== JSON.stringify(c.eval);
      if (prev && !again) {
        cells.push(prev);
        Object.keys(prev.metrics).forEach((k) => metricKeys.add(k));
        log(`[${tag}] finished in an earlier run: read ${resultFile}`);
        continue;
      }
      mkdirSync(dir, { recursive: true });
      let runDir: string | null = null,
        trainSeconds: number | null = null,
        trainSteps: number | null = null,
        resumedFrom: number | null = null;
      let policy: LoadedPolicy;
      if (m.kind === 'base') policy = base ??= await loadBasePolicy(cfg.model, c.task, cfg, cfg.train.threads);
      else if (prev) {
        runDir = dir;
        trainSeconds = prev.trainSeconds;
        trainSteps = prev.trainSteps;
        resumedFrom = prev.resumedFrom;
        log(`[${tag}] trained in an earlier run: evaluating ${runDir} again with the new eval settings`);
        policy = await loadRunPolicy(runDir, cfg);
      } else {
        runDir = dir;
        log(`[${tag}] training ${m.kind}${m.kind === 'gfn' ? ` (${cfg.objective})` : ''} for ${cfg.train.steps} steps → ${runDir}`);
        const ppo = m.kind === 'ppo' ? { ...m.ppo, klCoef: m.klCoef ?? PPO_DEFAULTS.klCoef } : undefined;
        const tr = await trainMethod(m.kind, cfg, runDir, { klCoef: m.klCoef, ppo, quiet: o.quiet, label: tag });
        if (tr.resumedFrom > 0) log(`[${tag}] continued from the checkpoint at step ${tr.resumedFrom}`);
        trainSeconds = tr.seconds;
        trainSteps = tr.steps;
        resumedFrom = tr.resumedFrom;
        policy = await loadRunPolicy(runDir, cfg);
      }
      log(`[${tag}] evaluating (${c.eval.samples} × ${describeDecode(decode)})`);
      const te = performance.now();
      const parts = await evaluateTask(c.task, policy, cfg, {
        samples: c.eval.samples,
        decode,
        seed: c.eval.seed + seed,
        data: c.eval.data,
        limit: c.eval.limit,
        offset: c.eval.offset,
        maxChars: c.eval.maxChars,
      });
      const evalSeconds = (performance.now() - te) / 1000;
      if (m.kind !== 'base') await releasePolicy(policy);
      for (const p of parts) writeFileAtomic(join(dir, `eval-${p.label}.jsonl`), p.items.map((it) => JSON.stringify(it)).join('\n') + '\n');
      const metrics = c.task === 'arithmetic' ? withDistinctCorrect(metricColumns(c.task, parts), parts) : metricColumns(c.task, parts);
      Object.keys(metrics).forEach((k) => metricKeys.add(k));
      const arith = c.task === 'arithmetic';
      const result: CellResult = {
        method: m.name,
        seed,
        metrics,
        correct: arith ? Object.fromEntries(parts.map((p) => [p.label, (p.items as ArithItemResult[]).map((it) => it.voteCorrect)])) : {},
        byOperands: arith ? operandCounts(parts) : {},
        runDir,
        trainSteps,
        trainSeconds,
        evalSeconds,
        resumedFrom,
        evalSettings: c.eval,
      };
      writeFileAtomic(resultFile, JSON.stringify(result) + '\n');
      cells.push(result);
      log(
        `[${tag}] ${Object.entries(metrics)
          .map(([k, v]) => `${k} ${v === null ? '—' : v.toFixed(3)}`)
          .join(', ')}`,
      );
    }
    if (base) await releasePolicy(base);
  }

  const metrics = [...metricKeys];
  const rows = aggregateRows(infos, cells, metrics);
  const labels = c.task === 'arithmetic' ? c.eval.data.map((f) => f.replace(/^.*\//, '').replace(/\.(json|jsonl|txt)$/, '')) : [];
  const paired = pairedTests(infos, cells, rows, labels);
  const pairedCols = addPairedColumns(rows, paired);
  const methods: Comparison['methods'] = c.methods.map((m, i) => {
    const cs = cells.filter((x) => x.method === m.name);
    const sum = (f: (x: CellResult) => number | null) => (cs.some((x) => f(x) !== null) ? cs.reduce((s, x) => s + (f(x) ?? 0), 0) : null);
    const trainSeconds = sum((x) => x.trainSeconds),
      evalSeconds = sum((x) => x.evalSeconds) ?? 0;
    return {
      name: m.name,
      kind: m.kind,
      objective: m.kind === 'gfn' ? cfgs[i][0].objective : null,
      decode: infos[i].decode,
      seeds: cs.map((x) => x.seed),
      trainSteps: cs[0]?.trainSteps ?? null,
      trainSeconds,
      evalSeconds,
      seconds: (trainSeconds ?? 0) + evalSeconds,
    };
  });
  const comparison: Comparison = {
    task: c.task,
    config: file,
    samples: c.eval.samples,
    seeds,
    columns: ['method', 'kind', 'decode', 'seeds', ...metrics.flatMap((k) => [k, sdKey(k)]), ...pairedCols, 'train s', 'eval s'],
    metrics,
    rows,
    paired,
    accuracyByOperands: accuracyByOperands(infos, cells),
    cells: cells.map(({ correct: _c, evalSettings: _e, ...rest }) => rest),
    methods,
    seconds: (performance.now() - t0) / 1000,
    cellSeconds: methods.reduce((s, m) => s + m.seconds, 0),
  };
  writeFileAtomic(join(outDir, 'comparison.json'), JSON.stringify(comparison, null, 2) + '\n');
  writeFileAtomic(join(outDir, 'comparison.csv'), toCsv(comparison));
  try {
    log(`report: ${(await writeReport(outDir)).file}`);
  } catch (err) {
    // the table is on disk already: a report that cannot be drawn is a warning, not a failed comparison
    process.stderr.write(`flowtune: warning: could not write ${join(outDir, 'report.html')}: ${(err as Error).message}\n`);
  }
  return comparison;
}

const cell = (v: string | number | null | undefined, digits = 3) =>
  v === null || v === undefined
    ? ''
    : typeof v !== 'number'
      ? v
      : v !== 0 && Math.abs(v) < 10 ** -digits
        ? v.toExponential(2)
        : v.toFixed(digits);

export function toCsv(c: Comparison): string {
  const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [c.columns.map(esc).join(',')];
  for (const r of c.rows) lines.push(c.columns.map((k) => esc(k === 'seeds' ? String(r[k]) : cell(r[k], 4))).join(','));
  return lines.join('\n') + '\n';
}

/**
 * A plain-text table (markdown-compatible): metrics as mean ± sd over seeds. The paired-test
 * columns are left to formatPaired (and the CSV / JSON / report), to keep the table readable.
 */
export function formatTable(c: Comparison): string {
  const sdCols = new Set(c.metrics.map(sdKey));
  const cols = c.columns.filter((k) => !sdCols.has(k) && !k.endsWith(' Δ best gfn') && !k.endsWith(' sign p'));
  const fmt = (r: AggregateRow, k: string): string => {
    const v = r[k];
    if (k === 'train s' || k === 'eval s') return cell(v, 1) || '—';
    if (k.endsWith(' sign p')) return typeof v === 'number' ? (v < 0.001 ? v.toExponential(1) : v.toFixed(3)) : '—';
    const sd = c.metrics.includes(k) ? r[sdKey(k)] : null;
    const m = cell(v, 3) || '—';
    return typeof sd === 'number' && m !== '—' ? `${m} ± ${sd.toFixed(3)}` : m;
  };
  const cells = c.rows.map((r) => cols.map((k) => (typeof r[k] === 'string' || k === 'seeds' ? String(r[k]) : fmt(r, k))));
  const width = cols.map((k, j) => Math.max(k.length, ...cells.map((r) => r[j].length)));
  const line = (xs: string[]) => '| ' + xs.map((x, j) => (j < 3 ? x.padEnd(width[j]) : x.padStart(width[j]))).join(' | ') + ' |';
  return [
    line(cols),
    '|' + width.map((w, j) => (j < 3 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|',
    ...cells.map(line),
  ].join('\n');
}

/** The paired tests as lines: best GFlowNet vs SFT / PPO per test set. */
export function formatPaired(c: Comparison): string {
  if (!c.paired.length) return '';
  const lines = c.paired.map(
    (t) =>
      `${t.testSet}: ${t.gfn} vs ${t.against}: Δ vote acc ${t.diff >= 0 ? '+' : ''}${t.diff.toFixed(3)}, items better ${t.wins} / worse ${t.losses} / tied ${t.ties} of ${t.items}, sign test p = ${t.p < 0.001 ? t.p.toExponential(1) : t.p.toFixed(3)}`,
  );
  return [
    'paired test per item (majority-vote correctness averaged over seeds; exact two-sided sign test):',
    ...lines.map((l) => '  ' + l),
  ].join('\n');
}

/** Wall times: the whole invocation and each method (train + eval, summed over its seeds). */
export function formatTimes(c: Comparison): string {
  const per = c.methods
    .map(
      (m) =>
        `${m.name} ${m.seconds.toFixed(0)} s${m.trainSeconds !== null ? ` (train ${m.trainSeconds.toFixed(0)} + eval ${m.evalSeconds.toFixed(0)})` : ''}`,
    )
    .join(', ');
  return `wall time: ${c.seconds.toFixed(0)} s this run, ${c.cellSeconds.toFixed(0)} s in all cells; per method over ${c.seeds.length} seed(s): ${per}`;
}
