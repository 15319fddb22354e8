/**
 * Training one method of a comparison into a run folder that `flowtune eval` and `sample`
 * read like any other: config.yaml + checkpoints/ (+ metrics.jsonl, summary.json).
 * - gfn: `LmTrainer` with the config's objective (TB, SubTB, SoftDQN, M-DQN), via the same
 *   loop as `flowtune train`;
 * - sft / reinforce: the baselines of this folder on a `FineTuneSetup` (the same adapter,
 *   optimizer over its policy variables, and RNG as every objective starts from);
 *   baseline.json says which method trained it (and makes eval sample softmax(logits)).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { LmTrainer, type StepMetrics } from '../finetune/trainer.js';
import { FineTuneSetup } from '../finetune/setup.js';
import type { TrainConfig } from '../finetune/schema.js';
import { runTraining } from '../finetune/run.js';
import { appendJsonLine, Progress, writeFileAtomic } from '../core/io.js';
import { SftBaseline } from './sft.js';
import { ReinforceBaseline } from './reinforce.js';

export type MethodKind = 'gfn' | 'sft' | 'reinforce';

export interface TrainedMethod {
  runDir: string;
  steps: number;
  seconds: number;
  last: StepMetrics | null;
}

export async function trainMethod(kind: MethodKind, cfg: TrainConfig, runDir: string, o: { klCoef?: number; quiet?: boolean; label?: string } = {}): Promise<TrainedMethod> {
  const t0 = performance.now();
  if (kind === 'gfn') {
    const trainer = await LmTrainer.create(cfg);
    writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
    const last = await runTraining(trainer, runDir, { quiet: o.quiet, label: o.label });
    return finish(runDir, kind, cfg, trainer.step, t0, last);
  }
  const trainer = await FineTuneSetup.create(cfg);
  writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(cfg));
  writeFileSync(join(runDir, 'baseline.json'), JSON.stringify({ method: kind, klCoef: o.klCoef ?? 0 }, null, 2) + '\n');
  const stepper = kind === 'sft' ? await SftBaseline.create(trainer) : new ReinforceBaseline(trainer, o.klCoef ?? 0);
  if (stepper instanceof SftBaseline) writeFileSync(join(runDir, 'baseline.json'), JSON.stringify({ method: kind, goldRationales: stepper.goldCount, leftOut: stepper.infeasible }, null, 2) + '\n');
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
  return finish(runDir, kind, cfg, trainer.step, t0, last);
}

function finish(runDir: string, kind: MethodKind, cfg: TrainConfig, steps: number, t0: number, last: StepMetrics | null): TrainedMethod {
  const seconds = (performance.now() - t0) / 1000;
  writeFileAtomic(join(runDir, 'summary.json'), JSON.stringify({ run: runDir, method: kind, objective: kind === 'gfn' ? cfg.objective : null, seed: cfg.seed, steps, loss: last?.loss ?? null, meanLogR: last?.meanLogR ?? null, seconds }, null, 2) + '\n');
  return { runDir, steps, seconds, last };
}
