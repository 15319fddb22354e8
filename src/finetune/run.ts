/**
 * The training loop shared by `flowtune train`, `compare` and the baselines: progress,
 * metrics.jsonl, atomic checkpoints, divergence handling; and reading run configs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { UsageError } from '../core/errors.js';
import { Progress, appendJsonLine, writeFileAtomic } from '../core/io.js';
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
  return validate(YAML.parse(readFileSync(file, 'utf8')), trainConfigSchema, file);
}

/**
 * Runs (or continues) training with a progress bar, metrics.jsonl every logEvery steps and
 * atomic checkpoints every checkpointEvery steps and at the end. Returns the last metrics.
 */
export async function runTraining(trainer: LmTrainer, runDir: string, opts: { quiet?: boolean; label?: string } = {}): Promise<StepMetrics | null> {
  const cfg = trainer.cfg;
  const total = cfg.train.steps;
  const metricsFile = join(runDir, 'metrics.jsonl');
  const progress = opts.quiet ? null : new Progress(total, opts.label ?? `train ${cfg.objective}`);
  let last: StepMetrics | null = null;
  let samples = 0, seconds = 0;
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
    if (m.step % cfg.train.checkpointEvery === 0 || m.step === total) trainer.saveCheckpoint(runDir);
    progress?.update(
      m.step,
      `loss ${m.loss.toFixed(3)} | log R ${m.meanLogR.toFixed(2)} | log Z ${m.logZ.toFixed(2)} | ${(samples / ((performance.now() - started) / 1000)).toFixed(0)} samples/s`,
    );
  }
  progress?.stop();
  return last;
}

/** Keeps metrics.jsonl consistent with the checkpoint a run resumes from (drops later lines). */
export function truncateMetrics(runDir: string, step: number): void {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && JSON.parse(l).step <= step);
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}
