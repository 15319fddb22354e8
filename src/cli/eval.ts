import type { Argv, CommandModule } from 'yargs';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../core/errors.js';
import type { DecodeSpec } from '../tasks/decode.js';
import { evaluateTask, formatSummary, type EvalOptions } from '../tasks/evaluate.js';
import { loadBasePolicy, loadRunPolicy, type LoadedPolicy, type TaskName } from '../tasks/policy.js';
import type { TrainConfig } from '../finetune/schema.js';
import { choiceArg, intArg, numArg } from './args.js';
import { ensureDir, writeFileAtomic } from '../core/io.js';
import { readRunConfig, readTrainConfig } from '../finetune/run.js';

const TASKS = ['arithmetic', 'infill', 'subj'] as const;

export function decodeSpecFrom(a: Record<string, unknown>): DecodeSpec {
  const kind = choiceArg('decode', a.decode, ['sample', 'greedy', 'beam'] as const);
  if (kind === 'sample') return { kind, temperature: numArg('temperature', a.temperature, 1e-3, 100) };
  return { kind };
}

export const evalCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'eval <task>',
  describe: 'evaluate a run (or a base model) on arithmetic, infill or subj',
  builder: (y: Argv) =>
    y
      .positional('task', { type: 'string', describe: 'arithmetic | infill | subj' })
      .option('run', { type: 'string', describe: 'run folder (runs/NAME) whose latest head is evaluated' })
      .option('base', { type: 'string', describe: 'evaluate this base model folder with no head (the base-LM baseline)' })
      .option('config', { type: 'string', describe: 'with --base: take the Z constraints (and split seed) from this training config' })
      .option('data', {
        type: 'string',
        array: true,
        default: [],
        describe: "test file(s); infill: the sentence file (default: the run's)",
      })
      .option('samples', { type: 'string', default: '10', describe: 'Z samples per item (majority vote, diversity)' })
      .option('decode', { type: 'string', default: 'sample', describe: 'sample | greedy | beam (beam width = --samples)' })
      .option('temperature', { type: 'string', default: '1', describe: 'sampling temperature on the policy (decode sample)' })
      .option('limit', { type: 'string', describe: 'arithmetic/subj: first N items per file; infill: N held-out items (default 50)' })
      .option('offset', { type: 'string', describe: "infill: first held-out item (default: the run's task.limit)" })
      .option('max-chars', { type: 'string', default: '80', describe: 'subj: sentences cut at a word boundary to this length' })
      .option('seed', { type: 'string', default: '0' })
      .option('out', { type: 'string', describe: 'per-item JSONL (default RUN/eval/<task>-<file>.jsonl, or runs/eval-base/…)' })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is one JSON summary' }),
  handler: async (a) => {
    const task = choiceArg('task', a.task, TASKS) as TaskName;
    if (!a.run === !a.base) throw new UsageError('give exactly one of --run RUN_FOLDER or --base MODEL_DIR');
    const o: EvalOptions = {
      samples: intArg('samples', a.samples, 1, 1000),
      decode: decodeSpecFrom(a),
      seed: intArg('seed', a.seed, 0),
      data: (a.data as string[]) ?? [],
      limit: a.limit === undefined ? undefined : intArg('limit', a.limit, 1),
      offset: a.offset === undefined ? undefined : intArg('offset', a.offset, 0),
      maxChars: intArg('max-chars', a['max-chars'], 8),
    };
    // refuse a foreign --out before spending the evaluation's time
    if (a.out && existsSync(a.out as string)) checkOverwritable(a.out as string, null);
    let cfg: TrainConfig | null = null;
    let policy: LoadedPolicy;
    if (a.run) {
      cfg = readRunConfig(a.run as string);
      policy = await loadRunPolicy(a.run as string, cfg);
    } else {
      if (a.config) cfg = readTrainConfig(a.config as string, []);
      policy = await loadBasePolicy(a.base as string, task, cfg);
    }
    const parts = await evaluateTask(task, policy, cfg, o);
    const outDir = a.run ? join(a.run as string, 'eval') : join('runs', 'eval-base');
    const written: string[] = [];
    for (const p of parts) {
      const file =
        a.out && parts.length === 1
          ? (a.out as string)
          : a.out
            ? (a.out as string).replace(/(\.jsonl)?$/, `-${p.label}.jsonl`)
            : join(outDir, `${task}-${p.label}.jsonl`);
      if (existsSync(file)) checkOverwritable(file, p.items[0]);
      ensureDir(dirname(file));
      writeFileAtomic(file, p.items.map((it) => JSON.stringify(it)).join('\n') + '\n');
      written.push(file);
      console.log(formatSummary(task, p));
    }
    console.log(`${policy.label}${policy.step !== null ? ` (step ${policy.step})` : ''}; per-item results: ${written.join(', ')}`);
    if (a.json)
      console.log(
        JSON.stringify({
          task,
          policy: policy.label,
          step: policy.step,
          parts: parts.map((p) => ({ label: p.label, ...p.summary })),
          files: written,
        }),
      );
  },
};

/**
 * eval only replaces a per-item file it wrote itself: JSON lines of the same shape (the same
 * keys as this evaluation's items). Anything else — a run's metrics.jsonl, a user's file —
 * is never overwritten.
 */
const RUN_FILES = new Set([
  'metrics.jsonl',
  'samples.jsonl',
  'summary.json',
  'config.yaml',
  'report.html',
  'comparison.json',
  'comparison.csv',
]);

function checkOverwritable(file: string, item: unknown): void {
  const refuse = (why: string) =>
    new UsageError(`${file} exists and ${why}; eval does not overwrite files it did not write (choose another --out)`);
  if (statSync(file).isDirectory()) throw refuse('is a folder');
  if (RUN_FILES.has(basename(file))) throw refuse('is a run file');
  if (statSync(file).size > 1e9) throw refuse('is too large to be a per-item file');
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const keys = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v).sort().join(',') : null);
  let shape: string | null = null;
  for (const l of lines) {
    let k: string | null;
    try {
      k = keys(JSON.parse(l));
    } catch {
      k = null;
    }
    if (k === null || (shape !== null && k !== shape)) throw refuse('is not a per-item file of flowtune eval');
    shape = k;
  }
  if (item !== null && shape !== null && shape !== keys(item)) throw refuse('holds results of another kind');
}
