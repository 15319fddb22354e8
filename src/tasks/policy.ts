/**
 * What an evaluation decodes with: a trained run (its frozen LM, Z constraints and the
 * head of its latest checkpoint) or a base model folder with no head (the "base LM"
 * baseline, with the task's default constraints or those of a training config).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../core/backend.js';
import { UsageError } from '../core/errors.js';
import { LmSession } from '../lm/session.js';
import { resolveModelDir } from '../lm/resolve.js';
import { loadHfTokenizer } from '../lm/tokenizer.js';
import { loadLatestCheckpoint } from '../finetune/checkpoint.js';
import { openModel, zConstraints } from '../finetune/setup.js';
import { temperedPolicy, type PolicyAdapter } from '../finetune/adapter.js';
import { LmHead } from '../finetune/head.js';
import { LoraPolicyAdapter } from '../finetune/lora-adapter.js';
import { samplingTemperature } from '../finetune/objectives/index.js';
import type { ZConstraints } from '../finetune/rollout.js';
import { trainConfigSchema, type TrainConfig } from '../finetune/schema.js';
import { validate } from '../finetune/config-loader.js';
import type { Tokenizer } from '../lm/tokenizer.js';
import type { Decoder } from './decode.js';

export type TaskName = 'arithmetic' | 'infill' | 'subj';

/**
 * Z constraints of the base-LM baseline when no training config is given: those of the
 * shipped configs (configs/arithmetic-tiny.yaml, infill-tiny.yaml, subj-*.yaml).
 */
export function defaultConstraints(task: TaskName, tok: Tokenizer): ZConstraints {
  const z =
    task === 'arithmetic'
      ? { minLength: 1, maxLength: 48, tool: 'calculator', stop: '.' }
      : task === 'infill'
        ? { minLength: 2, maxLength: 24 }
        : { minLength: 2, maxLength: 16 };
  const cfg = validate({ objective: 'tb', seed: 0, model: 'base', task: { kind: 'pairs' }, z }, trainConfigSchema, 'default constraints');
  return zConstraints(cfg, tok);
}

export interface LoadedPolicy extends Decoder {
  label: string;
  cfg: TrainConfig | null;
  step: number | null;
  /** the trained adapter, whose tensors (and, for LoRA, sampling session and frozen weights) it owns */
  adapter?: PolicyAdapter;
}

/** Releases what a loaded policy holds: its adapter, the sessions (a LoRA run's adapted one and its frozen base). */
export async function releasePolicy(p: LoadedPolicy): Promise<void> {
  // a LoRA adapter releases the session it samples from (p.session) itself; release is idempotent
  await p.adapter?.release();
  await p.session.release();
  await p.baseSession?.release();
}

/**
 * The sampling temperature of a run folder's policy, softmax(logits/τ): the objective's τ
 * (1/(1 − α) for M-DQN, eq. (MQ)); baselines (SFT, REINFORCE: baseline.json) sample softmax(logits).
 */
export function runTemperature(runDir: string, cfg: TrainConfig): number {
  return existsSync(join(runDir, 'baseline.json')) ? 1 : samplingTemperature(cfg);
}

/** A run folder: config.yaml + checkpoints/ (from `flowtune train`, or a baseline trained by compare). */
export async function loadRunPolicy(runDir: string, cfg: TrainConfig): Promise<LoadedPolicy> {
  const { dir, session, tok } = await openModel(cfg);
  const ck = loadLatestCheckpoint(runDir, (l) => process.stderr.write(`flowtune: warning: ${l}\n`));
  if (cfg.adapter.kind === 'lora') {
    // the adapted model decodes Z; the frozen base LM reads Y off X Z, as the reward did in
    // training (a LoRA adapter also changes how the model would continue after Z, untrained)
    const lora = await LoraPolicyAdapter.load(join(ck.dir, 'head'), dir, session, cfg.train.threads);
    return {
      session: lora.samplingSession(),
      baseSession: session,
      tok,
      constraints: zConstraints(cfg, tok),
      hook: lora.policy(),
      label: runDir,
      cfg,
      step: ck.step,
      adapter: lora,
    };
  }
  const { head } = LmHead.load(join(ck.dir, 'head'), { sha256: session.modelHash, vocabSize: session.vocabSize });
  return {
    session,
    tok,
    constraints: zConstraints(cfg, tok),
    hook: temperedPolicy(head, runTemperature(runDir, cfg)),
    label: runDir,
    cfg,
    step: ck.step,
    adapter: head,
  };
}

/** The base LM with no head. */
export async function loadBasePolicy(modelSpec: string, task: TaskName, cfg: TrainConfig | null, threads = 1): Promise<LoadedPolicy> {
  await selectBackend();
  let dir: string;
  try {
    dir = await resolveModelDir(modelSpec);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot open model ${modelSpec}: ${(err as Error).message.split('\n')[0]}`);
  }
  const session = await LmSession.open(dir, { threads, dtype: cfg?.dtype });
  const tok = await loadHfTokenizer(dir, session.facts.eosTokenId, session.vocabSize, {
    bos: cfg?.tokenizer.bos,
    configBosId: session.facts.bosTokenId,
  });
  const constraints = cfg ? zConstraints(cfg, tok) : defaultConstraints(task, tok);
  return { session, tok, constraints, label: `base ${modelSpec}`, cfg, step: null };
}
