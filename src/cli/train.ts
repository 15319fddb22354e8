import type { Argv, CommandModule } from 'yargs';
import { readdirSync, writeFileSync, mkdirSync, accessSync, constants } from 'node:fs';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import { UsageError } from '../core/errors.js';
import type { TrainConfig } from '../finetune/schema.js';
import { LmTrainer } from '../finetune/trainer.js';
import { hasCheckpoint } from '../finetune/checkpoint.js';
import { readRunConfig, readTrainConfig, runTraining, truncateMetrics } from '../finetune/run.js';
import { writeFileAtomic } from '../core/io.js';
import { writeReportSafe } from '../report/index.js';

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
