import { tf } from '../core/backend.js';
import { logSumExp } from '../core/math.js';
import { klDivergence, totalVariation } from '../gfn/exact.js';
import type { LmTrainer } from './trainer.js';
import { scoreRows, type ScoredRow } from './score.js';
import { disposeNodes, pick, stackNodes } from './nodes.js';
import type { ZSample } from './rollout.js';
import { UsageError } from '../core/errors.js';

export interface PosteriorReport {
  sequences: number;
  tv: number; // ½ Σ |P_θ(Z) − p(Z | X, Y)| over every Z
  policyMass: number; // Σ P_θ(Z) over the enumeration (1 up to rounding: nothing outside it)
  logZTrue: number; // log Σ R(Z)
  klPosteriorPrior: number; // KL(posterior ‖ base-model prior under the same constraints)
  klPosteriorPolicy: number;
}

/**
 * Exact check of a trained sampler on one (X, Y) whose Z space is small: every Z over the
 * allowed tokens with minLength ≤ |Z| ≤ maxLength is scored with the frozen LM (the exact
 * posterior ∝ R(Z)), and the policy's probability of each Z is the product of its step
 * probabilities (softmax of the head's logits; softmax(Q/τ) for soft Q-learning).
 */
export async function exactPosterior(t: LmTrainer, exampleIndex = 0): Promise<PosteriorReport> {
  const c = t.constraints;
  if (!c.allowedIds || c.tool !== 'none')
    throw new UsageError('verify posterior needs z.allowed and no tool, so that every Z can be enumerated');
  const k = c.allowedIds.length;
  let count = 0;
  for (let l = c.minLength; l <= c.maxLength; l++) count += k ** l;
  if (count > 50_000) throw new UsageError(`${count} sequences are too many to enumerate (limit 50,000); lower z.maxLength or z.allowed`);
  const zs: ZSample[] = [];
  const grow = (prefix: number[]) => {
    if (prefix.length >= c.minLength) zs.push({ tokens: prefix, isAction: new Uint8Array(prefix.length).fill(1) });
    if (prefix.length < c.maxLength) for (const id of c.allowedIds!) grow([...prefix, id]);
  };
  grow([]);
  const ex = t.examples[exampleIndex];
  const reward = t.rewardSpec();
  const rows = await scoreRows(
    t.session,
    zs.map(() => ex.xIds),
    zs,
    zs.map(() => ex.yIds),
    c,
    reward,
    { prefix: false, chunk: 128 },
  );
  const logR = Float64Array.from(rows, (r) => r.logR);
  const logZTrue = logSumExp(logR);
  const posterior = logR.map((l) => Math.exp(l - logZTrue));
  const dims = { d: t.session.hiddenSize, V: t.session.vocabSize, stop: c.stopId };
  const logPolicy = sequenceLogProbs(rows, dims, (h, b, chunk) => t.adapter.logits(h, b, chunk), t.objective.temperature);
  const logPrior = sequenceLogProbs(rows, dims, (_h, b) => b, 1);
  const policy = logPolicy.map(Math.exp);
  const prior = logPrior.map(Math.exp);
  const tv = totalVariation(policy, posterior);
  const policyMass = policy.reduce((s, v) => s + v, 0);
  checkSanity(
    tv,
    policyMass,
    posterior.reduce((s, v) => s + v, 0),
  );
  return {
    sequences: zs.length,
    tv,
    policyMass,
    logZTrue,
    klPosteriorPrior: klDivergence(posterior, prior),
    klPosteriorPolicy: klDivergence(posterior, policy),
  };
}

/** A numerical failure of the check itself: printed as one line, exit code 3 (like a NaN loss). */
export class PosteriorCheckError extends Error {
  readonly exitCode = 3;
}

/**
 * Both distributions must sum to 1 over the enumeration (the policy's steps cover every
 * allowed action, so no mass can leave it) and TV must lie in [0, 1]; anything else means the
 * numbers are wrong (e.g. positions shifted by padding) and must not be reported as a result.
 */
export function checkSanity(tv: number, policyMass: number, posteriorMass: number, tol = 1e-3): void {
  if (!(Math.abs(policyMass - 1) <= tol))
    throw new PosteriorCheckError(`posterior check: the policy's mass over every Z is ${policyMass}, not 1 — the numbers are wrong`);
  if (!(Math.abs(posteriorMass - 1) <= tol))
    throw new PosteriorCheckError(`posterior check: the posterior's mass is ${posteriorMass}, not 1 — the numbers are wrong`);
  if (!(tv >= -tol && tv <= 1 + tol))
    throw new PosteriorCheckError(`posterior check: TV = ${tv} lies outside [0, 1] — the numbers are wrong`);
}

/** log P_F(Z) = log Π_k softmax(logits_k/τ + mask)[a_k] for each scored row, in chunks of rows. */
export function sequenceLogProbs(
  rows: ScoredRow[],
  { d, V, stop }: { d: number; V: number; stop: number },
  /** logits at the chunk's stacked nodes (`chunk`: the rows they come from) */
  logitsOf: (h: tf.Tensor2D, base: tf.Tensor2D, chunk: ScoredRow[]) => tf.Tensor2D,
  tau: number,
): Float64Array {
  const out = new Float64Array(rows.length);
  for (let r0 = 0; r0 < rows.length; r0 += 256) {
    const chunk = rows.slice(r0, r0 + 256);
    const nodes = stackNodes(chunk, d, V, stop);
    const lp = tf.tidy(() =>
      pick(
        tf.logSoftmax(tf.add(tf.div(logitsOf(nodes.hidden, nodes.base, chunk), tau), nodes.negMask)) as tf.Tensor2D,
        nodes.chosen,
      ).dataSync(),
    );
    chunk.forEach((r, i) => {
      let s = 0;
      for (let j = 0; j < r.nodes.length; j++) s += lp[nodes.first[i] + j];
      out[r0 + i] = s;
    });
    disposeNodes(nodes);
  }
  return out;
}
