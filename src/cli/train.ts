import type { Argv, CommandModule } from 'yargs';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import { UsageError } from '../core/errors.js';
import type { TrainConfig } from '../finetune/schema.js';
import { LmTrainer, type StepMetrics } from '../finetune/trainer.js';
import { hasCheckpoint, killPoint, loadLatestCheckpoint, type Checkpoint } from '../finetune/checkpoint.js';
import { configDifferences, lastMetrics, readRunConfig, readTrainConfig, runTraining, truncateMetrics } from '../finetune/run.js';
import { ensureWritableDir, sweepTempFiles, writeFileAtomic } from '../core/io.js';
import { LOCK_FILE, acquireRunLock } from '../core/lock.js';
import { checkMemory } from '../core/memory.js';
import { writeReportSafe } from '../report/index.js';

const note = (line: string) => process.stderr.write(`flowtune: ${line}\n`);

export const trainCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'train',
  describe: 'fine-tune the LM head with a config (TB, SubTB, SoftDQN, M-DQN)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'YAML config (configs/*.yaml)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a key: --set a.b=value (repeatable)' })
      .option('out', { type: 'string', describe: 'run folder (default runs/<config name>)' })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe: 'continue the run in --out from its newest intact checkpoint (from step 0 if it has none)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'last stdout line is one JSON summary' }),
  handler: async (a) => {
    const sets = (a.set as string[]) ?? [];
    let runDir = a.out as string | undefined;
    let cfg: TrainConfig;
    let ck: Checkpoint | null = null;
    let restartSaid = false;
    if (a.resume) {
      if (!runDir) throw new UsageError('--resume needs --out RUN_FOLDER');
      if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new UsageError(`--out ${runDir}: no such run folder to resume`);
      ensureWritableDir(runDir);
      acquireRunLock(runDir);
      sweep(runDir);
      cfg = resumeConfig(runDir, a.config as string | undefined, sets);
      if (hasCheckpoint(runDir)) {
        try {
          ck = loadLatestCheckpoint(runDir, note);
        } catch (err) {
          // every checkpoint is unusable: what they held is lost either way, so start over (said, not silent)
          note(`${(err as Error).message}; restarting from step 0`);
          restartSaid = true;
        }
      }
      if (ck && ck.step >= cfg.train.steps) {
        await finishedRun(runDir, cfg, ck, a.json as boolean);
        return;
      }
    } else {
      if (!a.config) throw new UsageError('give --config FILE (or --resume --out RUN)');
      cfg = readTrainConfig(a.config as string, sets);
      runDir ??= join('runs', basename(a.config as string).replace(/\.ya?ml$/, ''));
      ensureWritableDir(runDir);
      acquireRunLock(runDir);
      sweep(runDir); // a start killed while writing its config leaves only a temporary file: not a run
      const held = readdirSync(runDir).filter((n) => n !== LOCK_FILE);
      if (held.length > 0) throw new UsageError(`${runDir} already holds a run; use --resume to continue it or choose another --out`);
    }
    const trainer = await LmTrainer.create(cfg);
    checkLmMemory(trainer);
    // the config goes in once the run is known to be startable: a failed start leaves no half run
    writeFileAtomic(join(runDir, 'config.yaml'), YAML.stringify(cfg));
    if (ck) {
      trainer.restore(runDir, ck);
      truncateMetrics(runDir, trainer.step);
      note(`resuming ${runDir} at step ${trainer.step} of ${cfg.train.steps}`);
    } else if (a.resume) {
      truncateMetrics(runDir, 0);
      if (!restartSaid) note(`${runDir} has no checkpoint; restarting it from step 0`);
    }
    const t0 = performance.now();
    const last = await runTraining(trainer, runDir, {
      beforeFinalCheckpoint: (m) => {
        writeFinalFiles(runDir!, trainer, m, t0);
        killPoint('final-files', m.step);
      },
    });
    killPoint('report', trainer.step);
    await writeReportSafe(runDir);
    const summary = last ? summaryOf(runDir, cfg, trainer.step, last, t0) : null;
    console.log(
      `trained ${cfg.objective} for ${trainer.step} steps → ${runDir} (loss ${summary?.loss?.toFixed(4)}, mean log R ${summary?.meanLogR?.toFixed(3)}, log Z ${summary?.logZ === null ? '–' : summary?.logZ?.toFixed(3)})`,
    );
    console.log(`sample from it: npx flowtune sample --run ${runDir} --x "..." -n 8`);
    if (a.json) console.log(JSON.stringify(summary));
  },
};

function sweep(runDir: string): void {
  const removed = sweepTempFiles(runDir, ['checkpoints']);
  if (removed.length)
    note(`removed ${removed.length} temporary file(s) left by an interrupted write: ${removed.map((p) => basename(p)).join(', ')}`);
}

/**
 * The config of a run being resumed. A --config / --set given with --resume must describe
 * the same run; only raising train.steps (training it further) is allowed.
 */
function resumeConfig(runDir: string, configFile: string | undefined, sets: string[]): TrainConfig {
  const file = join(runDir, 'config.yaml');
  const own = existsSync(file) ? readRunConfig(runDir) : null;
  if (!configFile && sets.length === 0) {
    if (!own) throw new UsageError(`${runDir} is not a run folder (no config.yaml); start it with --config`);
    return own;
  }
  const given = readTrainConfig(configFile ?? file, sets);
  if (!own) return given;
  const diff = configDifferences(own, given).filter((k) => k !== 'train.steps');
  if (diff.length)
    throw new UsageError(
      `--resume: the given config differs from the run's ${file} in ${diff.join(', ')}; a resumed run keeps its config (only train.steps may be raised)`,
    );
  if (given.train.steps < own.train.steps)
    throw new UsageError(`--resume: train.steps ${given.train.steps} is below the run's ${own.train.steps}; it can only be raised`);
  if (given.train.steps > own.train.steps)
    note(
      `extending ${runDir} from ${own.train.steps} to ${given.train.steps} steps (schedules over train.steps stretch for the remaining steps)`,
    );
  return given;
}

function summaryOf(runDir: string, cfg: TrainConfig, steps: number, last: StepMetrics, t0: number) {
  return {
    run: runDir,
    objective: cfg.objective,
    seed: cfg.seed,
    steps,
    loss: last.loss,
    meanLogR: last.meanLogR,
    logZ: Number.isFinite(last.logZ) ? last.logZ : null,
    seconds: (performance.now() - t0) / 1000,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

/** summary.json and samples.jsonl, written before the last checkpoint (see runTraining). */
function writeFinalFiles(runDir: string, trainer: LmTrainer, last: StepMetrics, t0: number): void {
  writeFileAtomic(join(runDir, 'summary.json'), JSON.stringify(summaryOf(runDir, trainer.cfg, last.step, last, t0), null, 2) + '\n');
  writeFileAtomic(join(runDir, 'samples.jsonl'), trainer.lastSamples.map((s) => JSON.stringify(s) + '\n').join(''));
}

/**
 * --resume of a run whose last checkpoint is its last step: nothing to train and nothing
 * overwritten. A summary.json or report.html lost to a kill after that checkpoint (runs from
 * before the final files were written first) is rebuilt from metrics.jsonl.
 */
async function finishedRun(runDir: string, cfg: TrainConfig, ck: Checkpoint, json: boolean): Promise<void> {
  const summaryFile = join(runDir, 'summary.json');
  if (!existsSync(summaryFile)) {
    const m = lastMetrics(runDir);
    if (m && m.step === ck.step) {
      const summary = {
        run: runDir,
        objective: cfg.objective,
        seed: cfg.seed,
        steps: ck.step,
        loss: m.loss ?? null,
        meanLogR: m.meanLogR ?? null,
        logZ: m.logZ ?? null,
      };
      writeFileAtomic(summaryFile, JSON.stringify(summary, null, 2) + '\n');
      note(`summary.json was missing; rebuilt it from the last line of metrics.jsonl`);
    }
  }
  if (!existsSync(join(runDir, 'report.html'))) await writeReportSafe(runDir);
  console.log(
    `${runDir} is complete (step ${ck.step} of ${cfg.train.steps}); nothing to do. To train further: --resume --set train.steps=N`,
  );
  if (json && existsSync(summaryFile)) console.log(JSON.stringify(JSON.parse(readFileSync(summaryFile, 'utf8'))));
}

/**
 * One step holds, per row and per node of its Z (at least z.minLength + 1 of them: the
 * tokens and the stop), the base log-probabilities and the action mask over the vocabulary
 * and the final hidden state (finetune/score.ts): refuse a batch that cannot fit.
 */
function checkLmMemory(trainer: LmTrainer): void {
  const { cfg, session } = trainer;
  const perNode = 5 * session.vocabSize + 4 * session.hiddenSize;
  checkMemory(
    `train.batchSize ${cfg.train.batchSize} × vocabulary ${session.vocabSize}`,
    cfg.train.batchSize * (cfg.z.minLength + 1) * perNode,
  );
}
