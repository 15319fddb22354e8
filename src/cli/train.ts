import type { Argv, CommandModule } from 'yargs';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, accessSync, constants } from 'node:fs';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import { UsageError } from '../core/errors.js';
import { loadConfig, validate } from '../train/config-loader.js';
import { checkConfigConsistency, trainConfigSchema, type TrainConfig } from '../train/schema.js';
import { DivergedError, LmTrainer, type StepMetrics } from '../train/lm-trainer.js';
import { hasCheckpoint } from '../train/checkpoint.js';
import { Progress, appendJsonLine, writeFileAtomic } from './output.js';
import { writeReportSafe } from '../report/index.js';

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
function truncateMetrics(runDir: string, step: number): void {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && JSON.parse(l).step <= step);
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}

export const trainCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'train',
  describe: 'fine-tune the LM head with a config (TB, SubTB, SoftDQN, M-DQN)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'YAML config (configs/*.yaml)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set a.b=value (repeatable)' })
      .option('out', { type: 'string', describe: 'run folder (default runs/<config name>)' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue the run in --out from its latest checkpoint' })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is one JSON summary' }),
  handler: async (a) => {
    const sets = (a.set as string[]) ?? [];
    let runDir = a.out as string | undefined;
    let cfg: TrainConfig;
    if (a.resume) {
      if (!runDir) throw new UsageError('--resume needs --out RUN_FOLDER');
      if (sets.length > 0) throw new UsageError('--set cannot change a run being resumed');
      cfg = readRunConfig(runDir);
      if (!hasCheckpoint(runDir)) throw new UsageError(`${runDir} has no checkpoint to resume from`);
    } else {
      if (!a.config) throw new UsageError('give --config FILE (or --resume --out RUN)');
      cfg = readTrainConfig(a.config as string, sets);
      runDir ??= join('runs', basename(a.config as string).replace(/\.ya?ml$/, ''));
      prepareRunDir(runDir);
    }
    const trainer = await LmTrainer.create(cfg);
    if (a.resume) {
      trainer.restore(runDir);
      truncateMetrics(runDir, trainer.step);
      process.stderr.write(`resuming ${runDir} at step ${trainer.step}\n`);
    } else writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
    const t0 = performance.now();
    const last = await runTraining(trainer, runDir);
    const summary = {
      run: runDir,
      objective: cfg.objective,
      seed: cfg.seed,
      steps: trainer.step,
      loss: last?.loss ?? null,
      meanLogR: last?.meanLogR ?? null,
      logZ: last?.logZ ?? null,
      seconds: (performance.now() - t0) / 1000,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    };
    writeFileAtomic(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    writeFileAtomic(join(runDir, 'samples.jsonl'), trainer.lastSamples.map((s) => JSON.stringify(s) + '\n').join(''));
    await writeReportSafe(runDir);
    console.log(`trained ${cfg.objective} for ${trainer.step} steps → ${runDir} (loss ${summary.loss?.toFixed(4)}, mean log R ${summary.meanLogR?.toFixed(3)}, log Z ${summary.logZ?.toFixed(3)})`);
    console.log(`sample from it: npx flowtune sample --run ${runDir} --x "..." -n 8`);
    if (a.json) console.log(JSON.stringify(summary));
  },
};

/** A fresh run folder: creatable, writable, and not holding an earlier run. */
function prepareRunDir(runDir: string): void {
  try {
    mkdirSync(runDir, { recursive: true });
    accessSync(runDir, constants.W_OK);
  } catch (err) {
    throw new UsageError(`cannot write to run folder ${runDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (readdirSync(runDir).length > 0) throw new UsageError(`${runDir} already holds a run; use --resume to continue it or choose another --out`);
}
