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
import { mkdirSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { loadConfig } from '../finetune/config-loader.js';
import { readTrainConfig } from '../finetune/run.js';
import { writeFileAtomic } from '../core/io.js';
import type { DecodeSpec } from '../tasks/decode.js';
import { describeDecode } from '../tasks/decode.js';
import { evaluateTask, metricColumns } from '../tasks/evaluate.js';
import { loadBasePolicy, loadRunPolicy } from '../tasks/policy.js';
import { trainMethod } from './methods.js';

const methodSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only'),
  kind: z.enum(['base', 'sft', 'reinforce', 'gfn']),
  /** gfn: tb | subtb | softdqn | mdqn (else the training config's) */
  objective: z.enum(['tb', 'subtb', 'softdqn', 'mdqn']).optional(),
  decode: z.enum(['sample', 'greedy', 'beam']).default('sample'),
  temperature: z.number().positive().default(1),
  /** overrides of the training config for this method (key=value, as --set) */
  set: z.array(z.string()).default([]),
  /** reinforce: KL penalty coefficient β to the base LM (0 = pure reward maximization) */
  klCoef: z.number().min(0).default(0),
});

export const compareSchema = z.strictObject({
  task: z.enum(['arithmetic', 'infill', 'subj']),
  /** the training config every trained method starts from (model, task, z, reward, head, optim, steps) */
  train: z.string().min(1),
  set: z.array(z.string()).default([]),
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

export interface ComparisonRow {
  method: string;
  kind: string;
  decode: string;
  [metric: string]: string | number | null;
}

export interface Comparison {
  task: string;
  config: string;
  samples: number;
  columns: string[];
  rows: ComparisonRow[];
  methods: { name: string; kind: string; objective: string | null; decode: string; runDir: string | null; trainSteps: number | null; trainSeconds: number | null; evalSeconds: number }[];
  seconds: number;
}

export function readCompareConfig(file: string, sets: string[]): CompareConfig {
  const c = loadConfig(file, sets, compareSchema);
  const names = new Set<string>();
  for (const m of c.methods) {
    if (names.has(m.name)) throw new UsageError(`${file}: method name ${m.name} appears twice`);
    names.add(m.name);
    if (m.objective && m.kind !== 'gfn') throw new UsageError(`${file}: method ${m.name}: objective applies to kind gfn only`);
  }
  return c;
}

export async function runCompare(file: string, c: CompareConfig, outDir: string, o: { quiet?: boolean; log?: (s: string) => void } = {}): Promise<Comparison> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create ${outDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (existsSync(join(outDir, 'comparison.json')) || (existsSync(join(outDir, 'methods')) && readdirSync(join(outDir, 'methods')).length > 0))
    throw new UsageError(`${outDir} already holds a comparison; choose another --out`);
  // validate every method's training config before any work
  const cfgs = c.methods.map((m) => readTrainConfig(c.train, [...c.set, ...m.set, ...(m.objective ? [`objective=${m.objective}`] : [])]));
  const rows: ComparisonRow[] = [];
  const methods: Comparison['methods'] = [];
  const columns = new Set<string>();
  for (const [i, m] of c.methods.entries()) {
    const cfg = cfgs[i];
    const decode: DecodeSpec = m.decode === 'sample' ? { kind: 'sample', temperature: m.temperature } : { kind: m.decode };
    let runDir: string | null = null, trainSeconds: number | null = null, trainSteps: number | null = null;
    let policy;
    if (m.kind === 'base') policy = await loadBasePolicy(cfg.model, c.task, cfg, cfg.train.threads);
    else {
      runDir = join(outDir, 'methods', m.name);
      mkdirSync(runDir, { recursive: true });
      log(`[${m.name}] training ${m.kind}${m.kind === 'gfn' ? ` (${cfg.objective})` : ''} for ${cfg.train.steps} steps → ${runDir}`);
      const tr = await trainMethod(m.kind, cfg, runDir, { klCoef: m.klCoef, quiet: o.quiet, label: m.name });
      trainSeconds = tr.seconds;
      trainSteps = tr.steps;
      policy = await loadRunPolicy(runDir, cfg);
    }
    log(`[${m.name}] evaluating (${c.eval.samples} × ${describeDecode(decode)})`);
    const te = performance.now();
    const parts = await evaluateTask(c.task, policy, cfg, {
      samples: c.eval.samples,
      decode,
      seed: c.eval.seed,
      data: c.eval.data,
      limit: c.eval.limit,
      offset: c.eval.offset,
      maxChars: c.eval.maxChars,
    });
    const evalSeconds = (performance.now() - te) / 1000;
    const itemsDir = join(outDir, 'methods', m.name);
    mkdirSync(itemsDir, { recursive: true });
    for (const p of parts) writeFileAtomic(join(itemsDir, `eval-${p.label}.jsonl`), p.items.map((it) => JSON.stringify(it)).join('\n') + '\n');
    const metrics = metricColumns(c.task, parts);
    Object.keys(metrics).forEach((k) => columns.add(k));
    rows.push({ method: m.name, kind: m.kind === 'gfn' ? `gfn-${cfg.objective}` : m.kind, decode: describeDecode(decode), ...metrics, 'train s': trainSeconds });
    methods.push({ name: m.name, kind: m.kind, objective: m.kind === 'gfn' ? cfg.objective : null, decode: describeDecode(decode), runDir, trainSteps, trainSeconds, evalSeconds });
    log(`[${m.name}] ${Object.entries(metrics).map(([k, v]) => `${k} ${v === null ? '—' : v.toFixed(3)}`).join(', ')}`);
  }
  const comparison: Comparison = { task: c.task, config: file, samples: c.eval.samples, columns: ['method', 'kind', 'decode', ...columns, 'train s'], rows, methods, seconds: (performance.now() - t0) / 1000 };
  writeFileAtomic(join(outDir, 'comparison.json'), JSON.stringify(comparison, null, 2) + '\n');
  writeFileAtomic(join(outDir, 'comparison.csv'), toCsv(comparison));
  return comparison;
}

const cell = (v: string | number | null | undefined, digits = 3) => (v === null || v === undefined ? '' : typeof v === 'number' ? v.toFixed(digits) : v);

export function toCsv(c: Comparison): string {
  const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [c.columns.map(esc).join(',')];
  for (const r of c.rows) lines.push(c.columns.map((k) => esc(cell(r[k], 4))).join(','));
  return lines.join('\n') + '\n';
}

/** A plain-text table (markdown-compatible) of the comparison. */
export function formatTable(c: Comparison): string {
  const cols = c.columns;
  const cells = c.rows.map((r) => cols.map((k) => cell(r[k], k === 'train s' ? 1 : 3) || '—'));
  const width = cols.map((k, j) => Math.max(k.length, ...cells.map((r) => r[j].length)));
  const line = (xs: string[]) => '| ' + xs.map((x, j) => (j < 3 ? x.padEnd(width[j]) : x.padStart(width[j]))).join(' | ') + ' |';
  return [line(cols), '|' + width.map((w, j) => (j < 3 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...cells.map(line)].join('\n');
}
