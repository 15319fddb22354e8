import type { LmSession } from '../lm/session.js';
import { sample, type PolicyHook } from '../lm/sampler.js';
import type { Rng } from '../core/rng.js';
import { maxAndSumExp } from '../core/math.js';
import type { Tokenizer } from '../lm/tokenizer.js';
import { calculatorCompletion } from '../text/arithmetic.js';
import { textTrigger } from '../lm/text-stop.js';

/**
 * One latent sequence Z for a prompt X, as the token-level GFlowNet sees it (docs/design.md §2
 * (LM)): the tokens of Z, and which of them the policy chose (the rest were appended by the
 * calculator tool, a deterministic part of the environment). The stop action ends Z and is
 * not a token of Z.
 */
export interface ZSample {
  tokens: number[];
  isAction: Uint8Array; // per token of Z
}

/** Where the policy decides: prefix lengths j (0..|Z|) at which the next token, or stop, was the policy's choice. */
export function decisionPrefixes(z: ZSample): number[] {
  const out: number[] = [];
  for (let j = 0; j < z.tokens.length; j++) if (z.isAction[j]) out.push(j);
  out.push(z.tokens.length);
  return out;
}

export interface ZConstraints {
  minLength: number;
  maxLength: number;
  allowedIds: number[] | null; // null: whole vocabulary (stop always allowed)
  tool: 'none' | 'calculator';
  /**
   * The token whose LM probability is the stop action (EOS by default; e.g. "." for
   * arithmetic, where Y = ". The answer is N." begins with it). It never enters Z.
   */
  stopId: number;
}

/**
 * The action mask at a state with a prefix of length j: allowed tokens, stop (= EOS) only
 * from minLength on, and only stop from maxLength on.
 */
export function actionMask(c: ZConstraints, vocabSize: number, j: number, out: Uint8Array, off = 0): void {
  const stop = c.stopId;
  if (j >= c.maxLength) {
    out.fill(0, off, off + vocabSize);
    out[off + stop] = 1;
    return;
  }
  if (c.allowedIds) {
    out.fill(0, off, off + vocabSize);
    for (const t of c.allowedIds) out[off + t] = 1;
  } else out.fill(1, off, off + vocabSize);
  out[off + stop] = j >= c.minLength ? 1 : 0;
}

/**
 * ε-uniform mixing on top of a policy hook: returns log((1 − ε)·softmax(l) + ε·U(allowed)) as
 * logits, so the sampler draws from the mixture (allowed = the sampler's own mask).
 */
export function epsilonMix(
  policy: PolicyHook | undefined,
  epsilon: number,
  vocabSize: number,
  allowedIds: number[] | null,
): PolicyHook | undefined {
  if (epsilon <= 0) return policy;
  const allowed = allowedIds ? new Set(allowedIds) : null;
  return (step) => {
    const logits = policy ? policy(step) : step.logits;
    const rows = logits.length / vocabSize;
    const out = new Float32Array(logits.length);
    const nAllowed = allowed ? allowed.size + 1 : vocabSize;
    for (let b = 0; b < rows; b++) {
      const o = b * vocabSize;
      const { m, s } = maxAndSumExp(logits, o, vocabSize);
      for (let v = 0; v < vocabSize; v++) {
        const p = Math.exp(logits[o + v] - m) / s;
        // the uniform part over allowed tokens; the sampler masks the rest anyway
        out[o + v] = Math.log((1 - epsilon) * p + epsilon / nAllowed);
      }
    }
    return out;
  };
}

export interface RolloutOptions {
  constraints: ZConstraints;
  temperature: number;
  policy?: PolicyHook;
  rng: Rng;
}

/** True when the decoded Z ends in "a op b =", the calculator's cue. */
export function calculatorTrigger(tok: Tokenizer): (ids: ArrayLike<number>) => boolean {
  return textTrigger(tok, '=', (text) => calculatorCompletion(text) !== null);
}

/**
 * Samples one Z per prompt with the frozen LM (KV-cached sampler) and the policy hook. With
 * the calculator tool, sampling pauses when the decoded Z ends in "a op b =" (whatever
 * token carried the "=": " =" in BPE vocabularies), the tool appends " result", and
 * sampling resumes from the longer prefix.
 */
export async function sampleZ(session: LmSession, tok: Tokenizer, prompts: number[][], o: RolloutOptions): Promise<ZSample[]> {
  const eos = o.constraints.stopId;
  const calc = o.constraints.tool === 'calculator' ? calculatorTrigger(tok) : null;
  const out: { tokens: number[]; isAction: number[] }[] = prompts.map(() => ({ tokens: [], isAction: [] }));
  let active = prompts.map((_, b) => b);
  while (active.length > 0) {
    const c = o.constraints;
    // one sampler call per group of rows with the same prefix length keeps min/max exact
    const groups = new Map<number, number[]>();
    for (const b of active) {
      const j = out[b].tokens.length;
      if (!groups.has(j)) groups.set(j, []);
      groups.get(j)!.push(b);
    }
    const next: number[] = [];
    for (const [j, rows] of [...groups].sort((a, b) => a[0] - b[0])) {
      const r = await sample(
        session,
        rows.map((b) => [...prompts[b], ...out[b].tokens]),
        {
          maxNewTokens: Math.max(1, c.maxLength - j + 1),
          minNewTokens: Math.max(0, c.minLength - j),
          temperature: o.temperature,
          allowedTokens: c.allowedIds ?? undefined,
          forceEosAtMax: true,
          stopWhen: calc ? (i, gen) => calc([...out[rows[i]].tokens, ...gen]) : undefined,
          eosTokenId: eos,
          rng: o.rng,
          policy: o.policy,
          keepHidden: false,
        },
      );
      rows.forEach((b, i) => {
        const n = r.lengths[i];
        for (let t = 0; t < n; t++) {
          const id = r.tokens[i * r.steps + t];
          if (id === eos && r.stopped[i] === 1 && t === n - 1) break; // the stop action
          out[b].tokens.push(id);
          out[b].isAction.push(1);
        }
        if (r.stopped[i] === 2) {
          const completion = calculatorCompletion(tok.decode(out[b].tokens));
          if (completion !== null) {
            for (const id of tok.encode(completion)) {
              out[b].tokens.push(id);
              out[b].isAction.push(0);
            }
          }
          next.push(b);
        }
      });
    }
    active = next;
  }
  return out.map((s) => ({ tokens: s.tokens, isAction: Uint8Array.from(s.isAction) }));
}
