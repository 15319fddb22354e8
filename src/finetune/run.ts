/**
 * The training loop shared by `flowtune train`, `compare` and the baselines: progress,
 * metrics.jsonl, atomic checkpoints, divergence handling; and reading run configs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { UsageError } from '../core/errors.js';
import { Progress, appendJsonLine, fixedOrDash, readTextFile, writeFileAtomic } from '../core/io.js';
import { loadConfig, validate } from './config-loader.js';
import { checkConfigConsistency, trainConfigSchema, type TrainConfig } from './schema.js';
import { DivergedError, type LmTrainer, type StepMetrics } from './trainer.js';

/** Reads a config file (+ --set overrides) into a validated, consistent config. */
export function readTrainConfig(file: string, sets: string[]): TrainConfig {
  const cfg = loadConfig(file, sets, trainConfigSchema);
  const problem = checkConfigConsistency(cfg);
  if (problem) throw new UsageError(`${file}: ${problem}`);
  return cfg;
}

/** The resolved config a run folder was started with. */
export function readRunConfig(runDir: string): TrainConfig {
  const file = join(runDir, 'config.yaml');
  if (!existsSync(file)) throw new UsageError(`${runDir} is not a run folder (no config.yaml)`);
  let raw: unknown;
  try {
    raw = YAML.parse(readTextFile(file));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validate(raw, trainConfigSchema, file);
}

/**
 * Key paths where two configs differ ("optim.lr", "objective"), for refusing a config given
 * with --resume that is not the run's.
 */
export function configDifferences(a: unknown, b: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => configDifferences(a[k], b[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path || '(whole config)'];
}

/**
 * Runs (or continues) training with a progress bar, metrics.jsonl every logEvery steps and
 * atomic checkpoints every checkpointEvery steps and at the end. `beforeFinalCheckpoint`
 * writes the run's final files: it runs before the last checkpoint, so a run whose last
 * checkpoint exists is complete (its --resume has nothing to do). Returns the last metrics.
 */
export async function runTraining(
  trainer: LmTrainer,
  runDir: string,
  opts: { quiet?: boolean; label?: string; beforeFinalCheckpoint?: (last: StepMetrics) => void } = {},
): Promise<StepMetrics | null> {
  const cfg = trainer.cfg;
  const total = cfg.train.steps;
  const metricsFile = join(runDir, 'metrics.jsonl');
  const progress = opts.quiet ? null : new Progress(total, opts.label ?? `train ${cfg.objective}`);
  let last: StepMetrics | null = null;
  let samples = 0,
    seconds = 0;
  const started = performance.now();
  while (trainer.step < total) {
    let m: StepMetrics;
    try {
      m = await trainer.trainStep();
    } catch (err) {
      if (err instanceof DivergedError) {
        trainer.saveCheckpoint(runDir);
        progress?.stop();
        throw new DivergedError(`${err.message}; the last good state (step ${trainer.step}) is saved in ${runDir}/checkpoints`);
      }
      throw err;
    }
    last = m;
    samples += m.samples;
    seconds += m.seconds;
    if (m.step % cfg.train.logEvery === 0 || m.step === total) {
      appendJsonLine(metricsFile, { ...m, samplesPerSec: samples / seconds });
    }
    if (m.step === total) opts.beforeFinalCheckpoint?.(m);
    if (m.step % cfg.train.checkpointEvery === 0 || m.step === total) trainer.saveCheckpoint(runDir);
    // SubTB has no single log Z estimate: "–", not "NaN"
    progress?.update(
      m.step,
      `loss ${fixedOrDash(m.loss, 3)} | log R ${fixedOrDash(m.meanLogR, 2)} | log Z ${fixedOrDash(m.logZ, 2)} | ${(samples / ((performance.now() - started) / 1000)).toFixed(0)} samples/s`,
    );
  }
  progress?.stop();
  return last;
}

/**
 * Keeps metrics.jsonl consistent with the checkpoint a run resumes from: drops later lines,
 * and a torn last line (a kill or a full disk mid-append).
 */
export function truncateMetrics(runDir: string, step: number): void {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) return;
  const kept = readTextFile(file)
    .split('\n')
    .filter((l) => {
      try {
        return l.trim() !== '' && JSON.parse(l).step <= step;
      } catch {
        return false;
      }
    });
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}

/** The last metrics line of a run (for a summary.json lost to a kill after the last checkpoint). */
export function lastMetrics(runDir: string): Record<string, unknown> | null {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) return null;
  let last: Record<string, unknown> | null = null;
  for (const l of readTextFile(file).split('\n')) {
    try {
      if (l.trim()) last = JSON.parse(l);
    } catch {
      // torn line
    }
  }
  return last;
}
