import { z } from 'zod';

/** A value scheduled linearly from `start` to `end` over `horizon` steps (constant after). */
const schedule = z.strictObject({ start: z.number(), end: z.number(), horizon: z.number().int().min(0) });
export type Schedule = z.infer<typeof schedule>;

export function scheduleAt(s: Schedule, step: number): number {
  if (s.horizon <= 0) return s.end;
  return s.start + (s.end - s.start) * Math.min(1, step / s.horizon);
}

const constant = (v: number) => ({ start: v, end: v, horizon: 0 });

/**
 * Fine-tuning configs (YAML under configs/). Unknown keys are errors; every section has
 * defaults so a config names only what it changes. docs/design.md §4 "LM head notes" gives the
 * defaults that were measured to converge.
 */
export const trainConfigSchema = z.strictObject({
  objective: z.enum(['tb', 'subtb', 'softdqn', 'mdqn']),
  seed: z.number().int().min(0),
  /** model folder (transformers.js layout) or, when online, a hub id */
  model: z.string().min(1),
  task: z.strictObject({
    /**
     * pairs: inline (X, Y) lists; arithmetic: a JSON file of the shared arithmetic format;
     * enumerated by `verify posterior` when z.allowed and z.maxLength make Z enumerable.
     */
    kind: z.enum(['pairs', 'arithmetic', 'infill']),
    /** pairs: X/Y strings (and optional gold Z) */
    pairs: z.array(z.strictObject({ x: z.string().min(1), y: z.string().min(1), z: z.string().optional() })).default([]),
    /** arithmetic: files with rationales (gold Z) and without */
    train: z.array(z.string()).default([]),
    pool: z.array(z.string()).default([]),
    /** infill: a sentence file, and the seed of the span split */
    sentences: z.string().optional(),
    limit: z.number().int().min(1).optional(),
  }),
  /** which graph file, as transformers.js's dtype: fp32 = onnx/model.onnx, fp16 = model_fp16.onnx, q8 = model_quantized.onnx, ... */
  dtype: z.enum(['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4']).default('fp32'),
  /** BOS before every X: 'auto' = when the tokenizer's post-processor adds one (Llama-3 style), true / false to override */
  tokenizer: z.strictObject({ bos: z.union([z.literal('auto'), z.boolean()]).default('auto') }).prefault({}),
  z: z
    .strictObject({
      /** Z shorter than minLength cannot be sampled: stop is masked until then (no penalty). */
      minLength: z.number().int().min(0).default(0),
      /** at maxLength only stop is allowed, so every trajectory terminates */
      maxLength: z.number().int().min(1).default(32),
      /** allowed characters/tokens of Z (null = the whole vocabulary); stop is always allowed */
      allowed: z.array(z.string()).nullable().default(null),
      /** calculator: each "a op b =" in Z is completed by the tool, not by the policy */
      tool: z.enum(['none', 'calculator']).default('none'),
      /**
       * the token whose LM probability is the stop action (null = EOS); it ends Z and is not
       * part of it. Arithmetic uses "." (Y = ". The answer is N." starts with it).
       */
      stop: z.string().nullable().default(null),
    })
    .prefault({}),
  reward: z
    .strictObject({
      /**
       * log R(Z) = (log prior(Z) + likelihoodWeight · log p_LM(Y | X Z)) / T_R, eq. (LM).
       * prior 'lm' is log p_LM(Z | X) (R = p_LM(X Z Y)^{1/T_R} up to the constant p(X));
       * 'allowed' renormalizes the base LM over the allowed tokens plus stop (docs/design.md §4,
       * posterior-check reward).
       */
      prior: z.enum(['lm', 'allowed']).default('lm'),
      likelihoodWeight: z.number().positive().default(1),
      temperature: schedule.default(constant(1)),
    })
    .prefault({}),
  head: z
    .strictObject({
      kind: z.enum(['mlp', 'linear']).default('mlp'),
      rank: z.number().int().min(1).default(8),
      alpha: z.number().positive().optional(),
      width: z.number().int().min(1).default(256),
      /** random rollouts whose hidden states fit the frozen whitening */
      whitenRollouts: z.number().int().min(2).default(64),
    })
    .prefault({}),
  /**
   * What trains. head (default): the LoRA-style head on the final hidden state (head section).
   * lora: low-rank adapters inside the transformer's linear layers (src/finetune/lora.ts),
   * W x + (alpha/rank)·B A x with A random and B = 0 at init, so the untrained policy is the
   * base model exactly. targets: Hugging Face module names of the family (GPT-2: c_attn,
   * c_proj, c_fc; null = PEFT's default for the family, c_attn for GPT-2).
   */
  adapter: z
    .strictObject({
      kind: z.enum(['head', 'lora']).default('head'),
      rank: z.number().int().default(8),
      alpha: z.number().positive().default(16),
      targets: z.array(z.string().min(1)).nullable().default(null),
      /**
       * learning rate of the LoRA factors (null = optim.lr); the head ignores it. LoRA on every
       * layer moves the policy much faster per step than the head at the same rate (docs/design.md §4)
       */
      lr: z.number().positive().nullable().default(null),
      /** train the log Z / log F head alongside the adapters (objectives that need one) */
      trainFlow: z.boolean().default(true),
      /**
       * a run folder whose latest checkpoint's adapter weights (head or LoRA factors, same kind,
       * rank and targets) this run starts from instead of the base model, e.g. a GFlowNet
       * started from an SFT run; optimizer moments, step and log Z start fresh
       */
      init: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  exploration: z
    .strictObject({
      /** fractions of each batch; they must sum to 1 */
      onPolicy: z.number().min(0).max(1).default(1),
      tempered: z.number().min(0).max(1).default(0),
      replay: z.number().min(0).max(1).default(0),
      /** tempered rows: one temperature per batch, T ~ U(low, high) */
      temperatureRange: z.tuple([z.number().positive(), z.number().positive()]).default([0.5, 2]),
      /** ε-uniform mixing over allowed tokens for on-policy rows */
      epsilon: schedule.default(constant(0)),
    })
    .prefault({}),
  replay: z
    .strictObject({
      /** best rationales kept per (X, Y), by log-reward, duplicates dropped */
      perKey: z.number().int().min(1).default(16),
      seedWithGold: z.boolean().default(true),
    })
    .prefault({}),
  optim: z
    .strictObject({
      optimizer: z.enum(['adam', 'adamw']).default('adam'),
      lr: z.number().positive().default(3e-3),
      /** learning rate of the log Z(X) / log F head */
      logZLr: z.number().positive().default(0.1),
      weightDecay: z.number().min(0).default(0),
      warmup: z.number().int().min(0).default(0),
      /** cosine decay to this fraction of lr by the last step (1 = constant) */
      finalLrFraction: z.number().min(0).max(1).default(0.05),
      clip: z.number().positive().default(1),
    })
    .prefault({}),
  train: z
    .strictObject({
      steps: z.number().int().min(1).default(1500),
      batchSize: z.number().int().min(1).default(16),
      /**
       * optimizer updates on each sampled batch (TB and SubTB only: their loss is minimized by
       * the same policy whatever distribution drew the trajectories, so a batch may be reused;
       * PPO's default 4 passes × 2 minibatches make 8)
       */
      updatesPerBatch: z.number().int().min(1).default(1),
      logEvery: z.number().int().min(1).default(10),
      checkpointEvery: z.number().int().min(1).default(100),
      /** onnxruntime intra-op threads (1 is fastest on 2 shared cores, docs/design.md §3) */
      threads: z.number().int().min(1).default(1),
    })
    .prefault({}),
  subtb: z.strictObject({ lambda: z.number().positive().default(1) }).prefault({}),
  dqn: z
    .strictObject({
      /**
       * learning rate of the adapter under soft Q-learning (null = adapter.lr / optim.lr): Q-value
       * regression needs a larger rate than TB / SubTB tolerate with LoRA (docs/design.md §4)
       */
      lr: z.number().positive().nullable().default(null),
      munchausenAlpha: z.number().min(0).lt(1).default(0.15),
      l0: z.number().max(0).default(-100),
      bufferSize: z.number().int().min(1).default(10000),
      replayBatch: z.number().int().min(1).default(128),
      polyak: z.number().gt(0).max(1).default(0.05),
      huber: z.boolean().default(true),
      /** prioritized replay exponent (0 = uniform); priorities are per-transition losses */
      perAlpha: z.number().min(0).default(0.5),
      /**
       * reward each token's edge with its prior log-probability and the exit with the rest of
       * log R (the same trajectory reward, docs/design.md §4): Q = log π̃ then starts consistent
       * with its inner targets instead of regressing every sampled token toward 0
       */
      priorPerToken: z.boolean().default(false),
    })
    .prefault({}),
});

export type TrainConfig = z.infer<typeof trainConfigSchema>;

export function checkConfigConsistency(c: TrainConfig): string | null {
  const e = c.exploration;
  if (Math.abs(e.onPolicy + e.tempered + e.replay - 1) > 1e-9)
    return `exploration.onPolicy + tempered + replay must be 1 (got ${e.onPolicy + e.tempered + e.replay})`;
  if (c.z.minLength > c.z.maxLength) return `z.minLength (${c.z.minLength}) exceeds z.maxLength (${c.z.maxLength})`;
  if (c.adapter.rank <= 0) return `adapter.rank must be a positive integer (got ${c.adapter.rank})`;
  if (e.temperatureRange[0] > e.temperatureRange[1]) return 'exploration.temperatureRange must be [low, high]';
  if (c.train.updatesPerBatch > 1 && (c.objective === 'softdqn' || c.objective === 'mdqn'))
    return `train.updatesPerBatch applies to tb and subtb (${c.objective} makes one replayed update of dqn.replayBatch transitions per step)`;
  return null;
}
