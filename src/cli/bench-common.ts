import type { Argv } from 'yargs';
import { join } from 'node:path';
import { ENGINES } from '../nn/factory.js';
import type { TrainerOptions } from '../benchmarks/build-trainer.js';
import { choiceArg, intArg, listArg, numArg } from './args.js';
import { Progress, appendJsonLine, ensureWritableDir, prepareOutDir, writeFileAtomic } from '../core/io.js';
import { acquireRunLock } from '../core/lock.js';
import { writeReportSafe } from '../report/index.js';

/** The training flags every MLP benchmark takes (hypergrid, bitseq, molecules). */
export type TrainingFlags = Pick<TrainerOptions, 'iterations' | 'batch' | 'seed' | 'engine' | 'hidden' | 'lr' | 'epsilon'> & {
  evalEvery: number;
};

export function trainingOptions(y: Argv, d: TrainingFlags, help: { batch: string; seed?: string; evalEvery: string }): Argv {
  return y
    .option('iterations', { type: 'string', default: String(d.iterations) })
    .option('batch', { type: 'string', default: String(d.batch), describe: help.batch })
    .option('seed', { type: 'string', default: String(d.seed), describe: help.seed })
    .option('engine', { type: 'string', default: d.engine, describe: `policy network: ${ENGINES.join('|')}` })
    .option('hidden', { type: 'string', default: d.hidden.join(','), describe: 'hidden layer sizes' })
    .option('lr', { type: 'string', default: String(d.lr) })
    .option('epsilon', { type: 'string', default: String(d.epsilon), describe: 'ε-uniform exploration' })
    .option('eval-every', { type: 'string', default: String(d.evalEvery), describe: help.evalEvery })
    .option('out', { type: 'string', describe: 'folder for metrics.jsonl, summary.json and report.html' })
    .option('json', { type: 'boolean', default: false, describe: 'last stdout line is one JSON summary' });
}

export function parseTrainingOptions(a: Record<string, unknown>): TrainingFlags {
  return {
    iterations: intArg('iterations', a.iterations, 1),
    batch: intArg('batch', a.batch, 1),
    seed: intArg('seed', a.seed, 0),
    engine: choiceArg('engine', a.engine, ENGINES),
    hidden: listArg('hidden', a.hidden),
    lr: numArg('lr', a.lr, 0),
    epsilon: numArg('epsilon', a.epsilon, 0, 1),
    evalEvery: intArg('eval-every', a['eval-every'], 1),
  };
}

/**
 * What a benchmark writes: progress on stderr, and with --out a checked folder holding
 * metrics.jsonl (one line per record), summary.json and report.html.
 */
export class BenchOutput {
  readonly progress: Progress;

  constructor(
    private readonly out: string | undefined,
    total: number,
    label: string,
  ) {
    if (out) {
      // one writer per folder: a second bench on the same --out stops here, before reading it
      ensureWritableDir(out);
      acquireRunLock(out);
      prepareOutDir(out, ['metrics.jsonl', 'summary.json']);
    }
    this.progress = new Progress(total, label);
  }

  metrics(record: unknown): void {
    if (this.out) appendJsonLine(join(this.out, 'metrics.jsonl'), record);
  }

  async finish(summary: unknown): Promise<void> {
    this.progress.stop();
    if (!this.out) return;
    writeFileAtomic(join(this.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    await writeReportSafe(this.out);
  }
}
