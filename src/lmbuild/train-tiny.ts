/**
 * Pre-trains a tiny LM in tfjs (docs/design.md §3 "Tiny base LM notes"): one item per row at
 * position 0, right-padded and loss-masked, EOS after each item; Adam with linear warm-up then
 * cosine decay to 10%, global-norm clipping at 1.0. The model (its forward and parameters) and
 * the tokenizer are pluggable: the character GPT (trainTiny) and the LLaMA-family model with a
 * byte-level BPE (llama-train.ts) share this loop. A build step; deterministic for a given seed
 * and corpus (fixed step count, seeded Rng).
 */
import { tf, selectBackend } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { type GptConfig, type GptWeights, initWeights, paramCount } from '../lm/gpt.js';
import { type TfParams, fromTfParams, referenceForward, toTfParams } from './reference.js';

/** What the loop trains: tfjs variables, a differentiable forward, and the export back to weights. */
export interface TrainableLm {
  vocabSize: number;
  nCtx: number;
  eosTokenId: number;
  /** tf.Variable parameters by name */
  params: TfParams;
  /** logits [B·S, V] of right-padded rows at position 0 (call inside a tidy / gradient closure) */
  logits(p: TfParams, b: { batch: number; seqLen: number; ids: Int32Array }): tf.Tensor2D;
  /** the trained weights, in the layout the ONNX writer reads */
  weights(p: TfParams): GptWeights;
}

/** The character GPT (gpt.ts) as a TrainableLm, initialized from the seed. */
export function gptTrainable(c: GptConfig, seed: number): TrainableLm {
  return {
    vocabSize: c.vocabSize,
    nCtx: c.nCtx,
    eosTokenId: c.eosTokenId,
    params: toTfParams(c, initWeights(c, seed), true),
    logits: (p, b) => referenceForward(c, p, { batch: b.batch, seqLen: b.seqLen, ids: b.ids }).logits,
    weights: (p) => fromTfParams(c, p),
  };
}

/** A tokenizer the loop can use: text → ids, no special tokens added. */
export interface TextEncoderLike {
  encode(text: string): number[];
}

/**
 * The seeded train / held-out split every build uses (and `flowtune model heldout` repeats):
 * a Fisher–Yates shuffle of the item indices with Rng(seed), the first `valItems` held out.
 * Returns the shuffled order and the Rng, which the training loop continues to draw batches from.
 */
export function heldOutSplit(n: number, seed: number): { order: number[]; rng: Rng } {
  const rng = new Rng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { order, rng };
}

export interface TrainOptions {
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  clip: number;
  seed: number;
  evalEvery: number;
  /** Held-out items (taken after a seeded shuffle; never trained on). */
  valItems: number;
  log?: (line: string) => void;
}

export interface CurvePoint {
  step: number;
  trainLoss: number;
  valLoss: number;
  cpuSeconds: number;
  wallSeconds: number;
}

export interface TrainResult {
  weights: GptWeights;
  curve: CurvePoint[];
  valPerplexity: number;
  valTokens: number;
  /** total held-out NLL (nats, EOS included) and the characters of the held-out items */
  valNats: number;
  valChars: number;
  trainItems: number;
  params: number;
  cpuSeconds: number;
  wallSeconds: number;
  peakRssMiB: number;
  valSet: string[];
}

interface Batch {
  B: number;
  S: number;
  ids: Int32Array;
  targets: Int32Array;
  mask: Float32Array;
}

function makeBatch(rows: number[][], eos: number, nCtx: number): Batch {
  const seqs = rows.map((r) => [...r, eos].slice(0, nCtx + 1));
  const S = Math.max(...seqs.map((s) => s.length)) - 1;
  const B = rows.length;
  const ids = new Int32Array(B * S).fill(eos);
  const targets = new Int32Array(B * S).fill(eos);
  const mask = new Float32Array(B * S);
  seqs.forEach((s, b) => {
    for (let t = 0; t + 1 < s.length; t++) {
      ids[b * S + t] = s[t];
      targets[b * S + t] = s[t + 1];
      mask[b * S + t] = 1;
    }
  });
  return { B, S, ids, targets, mask };
}

/** Mean next-token NLL over the masked positions (scalar tensor). */
function batchLoss(lm: TrainableLm, p: TfParams, b: Batch): tf.Scalar {
  const logits = lm.logits(p, { batch: b.B, seqLen: b.S, ids: b.ids });
  const logp = tf.logSoftmax(logits);
  // one-hot × sum instead of gather (wasm has no gather gradient, docs/design.md §3)
  const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(b.targets, 'int32'), lm.vocabSize)), 1);
  const m = tf.tensor1d(b.mask);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, m))), tf.sum(m)) as tf.Scalar;
}

/** Too few items for the held-out split and one batch: a UsageError (call before building the model). */
export function checkCorpusSize(n: number, o: Pick<TrainOptions, 'valItems' | 'batch'>): void {
  if (n < o.valItems + o.batch) throw new UsageError(`corpus has ${n} items; need more than ${o.valItems + o.batch}`);
}

/** The character GPT, trained from the seed's initialization. */
export async function trainTiny(c: GptConfig, tok: TextEncoderLike, items: string[], o: TrainOptions): Promise<TrainResult> {
  checkCorpusSize(items.length, o);
  await selectBackend();
  return trainLm(gptTrainable(c, o.seed), tok, items, o);
}

export async function trainLm(m: TrainableLm, tok: TextEncoderLike, items: string[], o: TrainOptions): Promise<TrainResult> {
  checkCorpusSize(items.length, o);
  await selectBackend();
  const { order, rng } = heldOutSplit(items.length, o.seed);
  const encoded = order.map((i) => tok.encode(items[i]));
  const val = encoded.slice(0, o.valItems);
  const train = encoded.slice(o.valItems);
  const valSet = order.slice(0, o.valItems).map((i) => items[i]);
  const params = m.params;
  const vars = [...params.values()] as tf.Variable[];
  const optimizer = tf.train.adam(o.lr, 0.9, 0.99, 1e-8);
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const cpuSec = () => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 1e6;
  };
  const evalLoss = (): { loss: number; tokens: number; nats: number } => {
    let nll = 0;
    let n = 0;
    for (let i = 0; i < val.length; i += 64) {
      const b = makeBatch(val.slice(i, i + 64), m.eosTokenId, m.nCtx);
      const cnt = b.mask.reduce((a, x) => a + x, 0);
      nll += tf.tidy(() => batchLoss(m, params, b).dataSync()[0]) * cnt;
      n += cnt;
    }
    return { loss: nll / n, tokens: n, nats: nll };
  };
  const curve: CurvePoint[] = [];
  let running = 0;
  let runningN = 0;
  for (let step = 1; step <= o.steps; step++) {
    const rows = Array.from({ length: o.batch }, () => train[rng.int(train.length)]);
    const b = makeBatch(rows, m.eosTokenId, m.nCtx);
    const lr =
      step <= o.warmup
        ? (o.lr * step) / o.warmup
        : o.lr * (0.1 + 0.45 * (1 + Math.cos((Math.PI * (step - o.warmup)) / Math.max(1, o.steps - o.warmup))));
    (optimizer as any).learningRate = lr;
    const lossVal = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => batchLoss(m, params, b), vars);
      const names = Object.keys(grads);
      const sq = tf.addN(names.map((n) => tf.sum(tf.square(grads[n]))));
      const norm = Math.sqrt(sq.dataSync()[0]);
      const scale = norm > o.clip ? o.clip / norm : 1;
      const clipped: Record<string, tf.Tensor> = {};
      for (const n of names) clipped[n] = scale === 1 ? grads[n] : tf.mul(grads[n], scale);
      optimizer.applyGradients(clipped as any);
      return value.dataSync()[0];
    });
    running += lossVal;
    runningN++;
    if (step % o.evalEvery === 0 || step === o.steps) {
      const v = evalLoss();
      const pt = { step, trainLoss: running / runningN, valLoss: v.loss, cpuSeconds: cpuSec(), wallSeconds: (Date.now() - t0) / 1000 };
      curve.push(pt);
      running = 0;
      runningN = 0;
      o.log?.(
        `step ${step}  train ${pt.trainLoss.toFixed(4)}  val ${pt.valLoss.toFixed(4)}  lr ${lr.toExponential(2)}  cpu ${pt.cpuSeconds.toFixed(0)}s  wall ${pt.wallSeconds.toFixed(0)}s`,
      );
    }
  }
  const final = evalLoss();
  const weights = m.weights(params);
  for (const v of vars) v.dispose();
  optimizer.dispose();
  return {
    weights,
    curve,
    valPerplexity: Math.exp(final.loss),
    valTokens: final.tokens,
    valNats: final.nats,
    valChars: valSet.reduce((a, t) => a + t.length, 0),
    trainItems: train.length,
    params: paramCount(weights),
    cpuSeconds: cpuSec(),
    wallSeconds: (Date.now() - t0) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    valSet,
  };
}
