/**
 * Training one method of a comparison into a run folder that `flowtune eval` and `sample`
 * read like any other: config.yaml + checkpoints/ (+ metrics.jsonl, summary.json).
 * - gfn: `LmTrainer` with the config's objective (TB, SubTB, SoftDQN, M-DQN), via the same
 *   loop as `flowtune train`;
 * - sft / reinforce / ppo: the baselines of this folder on a `FineTuneSetup` (the same adapter,
 *   optimizer over its policy variables, and RNG as every objective starts from);
 *   baseline.json says which method trained it (and makes eval sample softmax(logits)).
 * A run folder that already holds a checkpoint (a compare run that was killed) continues from
 * it: the trainer is restored (head, optimizer moments, RNG, replay, step), metrics.jsonl is cut
 * back to the checkpoint, and training goes on to train.steps.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { LmTrainer, type StepMetrics } from '../finetune/trainer.js';
import { FineTuneSetup } from '../finetune/setup.js';
import type { TrainConfig } from '../finetune/schema.js';
import { runTraining, truncateMetrics } from '../finetune/run.js';
import { hasCheckpoint } from '../finetune/checkpoint.js';
import { appendJsonLine, Progress, writeFileAtomic } from '../core/io.js';
import { SftBaseline } from './sft.js';
import { ReinforceBaseline } from './reinforce.js';
import { PpoBaseline, type PpoOptions } from './ppo.js';

export type MethodKind = 'gfn' | 'sft' | 'reinforce' | 'ppo';

export interface TrainedMethod {
  runDir: string;
  steps: number;
  seconds: number;
  last: StepMetrics | null;
  /** the step the run continued from (0 for a fresh run) */
  resumedFrom: number;
}

export interface MethodOptions {
  klCoef?: number;
  ppo?: Partial<PpoOptions>;
  quiet?: boolean;
  label?: string;
}

/** Restores a run folder's latest checkpoint into a fresh trainer; returns the step (0 when there is none). */
function resumeIfAny(trainer: LmTrainer | FineTuneSetup, runDir: string): number {
  if (!hasCheckpoint(runDir)) {
    truncateMetrics(runDir, 0); // killed before its first checkpoint: start over
    return 0;
  }
  if (trainer instanceof LmTrainer) trainer.restore(runDir);
  else trainer.restoreCheckpoint(runDir);
  truncateMetrics(runDir, trainer.step);
  return trainer.step;
}

/**
 * Trains one method into runDir (continuing from its latest checkpoint) and releases the
 * trainer's sessions and tensors when done: compare trains many methods in one process.
 */
export async function trainMethod(kind: MethodKind, cfg: TrainConfig, runDir: string, o: MethodOptions = {}): Promise<TrainedMethod> {
  const t0 = performance.now();
  if (kind === 'gfn') {
    const trainer = await LmTrainer.create(cfg);
    try {
      writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
      const from = resumeIfAny(trainer, runDir);
      const last = await runTraining(trainer, runDir, { quiet: o.quiet, label: o.label });
      return finish(runDir, kind, cfg, trainer.step, t0, last, from);
    } finally {
      await trainer.release();
    }
  }
  const trainer = await FineTuneSetup.create(cfg);
  try {
    return await trainBaseline(kind, trainer, runDir, o, t0);
  } finally {
    await trainer.release();
  }
}

async function trainBaseline(
  kind: MethodKind,
  trainer: FineTuneSetup,
  runDir: string,
  o: MethodOptions,
  t0: number,
): Promise<TrainedMethod> {
  const cfg = trainer.cfg;
  writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
  let stepper: { trainStep(): Promise<StepMetrics> };
  let info: Record<string, unknown>;
  if (kind === 'sft') {
    const sft = await SftBaseline.create(trainer);
    stepper = sft;
    info = { method: kind, goldRationales: sft.goldCount, leftOut: sft.infeasible };
  } else if (kind === 'ppo') {
    const ppo = new PpoBaseline(trainer, { ...o.ppo, ...(o.klCoef !== undefined ? { klCoef: o.klCoef } : {}) });
    stepper = ppo;
    info = { method: kind, ...ppo.o, baseline: 'group mean' };
  } else {
    stepper = new ReinforceBaseline(trainer, o.klCoef ?? 0);
    info = { method: kind, klCoef: o.klCoef ?? 0 };
  }
  writeFileSync(join(runDir, 'baseline.json'), JSON.stringify(info, null, 2) + '\n');
  const from = resumeIfAny(trainer, runDir);
  const total = cfg.train.steps;
  const progress = o.quiet ? null : new Progress(total, o.label ?? kind);
  let last: StepMetrics | null = null;
  while (trainer.step < total) {
    last = await stepper.trainStep();
    if (last.step % cfg.train.logEvery === 0 || last.step === total) appendJsonLine(join(runDir, 'metrics.jsonl'), last);
    if (last.step % cfg.train.checkpointEvery === 0 || last.step === total) trainer.saveCheckpoint(runDir);
    progress?.update(last.step, `loss ${last.loss.toFixed(3)} | log R ${last.meanLogR.toFixed(2)}`);
  }
  progress?.stop();
  return finish(runDir, kind, cfg, trainer.step, t0, last, from);
}

function finish(
  runDir: string,
  kind: MethodKind,
  cfg: TrainConfig,
  steps: number,
  t0: number,
  last: StepMetrics | null,
  resumedFrom: number,
): TrainedMethod {
  const seconds = (performance.now() - t0) / 1000;
  writeFileAtomic(
    join(runDir, 'summary.json'),
    JSON.stringify(
      {
        run: runDir,
        method: kind,
        objective: kind === 'gfn' ? cfg.objective : null,
        seed: cfg.seed,
        steps,
        resumedFrom,
        loss: last?.loss ?? null,
        meanLogR: last?.meanLogR ?? null,
        seconds,
      },
      null,
      2,
    ) + '\n',
  );
  return { runDir, steps, seconds, last, resumedFrom };
}
