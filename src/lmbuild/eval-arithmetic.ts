/**
 * Greedy accuracy of a base LM on the arithmetic task (docs/design.md §6): X = the query, the
 * model writes Z and Y; correct when "The answer is N." has N = num_sol. Two settings:
 * free (the model writes every intermediate result) and with the calculator tool (each
 * "a op b =" the model writes is completed by the tool with " <result>"). Optionally the
 * rationale is forced to start (the prompt is X + " ", so "." cannot end Z at once — what
 * z.minLength ≥ 1 does in fine-tuning), and the share of outputs whose first step copies the
 * query's first two operands and operator is reported.
 */
import { UsageError } from '../core/errors.js';
import { answerText, calculatorCompletion, loadArithmetic, parseAnswer, parseQuery, rationale } from '../text/arithmetic.js';
import type { LmSession } from '../lm/session.js';
import { sample } from '../lm/sampler.js';
import { type Tokenizer, encodeX } from '../lm/tokenizer.js';
import { textTrigger } from '../lm/text-stop.js';

export interface ArithEval {
  file: string;
  n: number;
  accuracy: number;
  calculator: boolean;
  forceRationale: boolean;
  /** Share of problems whose output starts with the query's first step "a op b =". */
  firstStep: number;
  /** Share of problems whose output contains a rationale ("=" before "The answer is"). */
  withRationale: number;
  /** Output includes the forced leading " " when forceRationale. */
  examples: { query: string; output: string; correct: boolean; firstStep: boolean }[];
}

/** Whether `output` (the text after "Answer:") begins with the query's first step "a op b =". */
export function firstStepRight(query: string, output: string): boolean {
  const { operands, ops } = parseQuery(query);
  return output.trimStart().startsWith(`${operands[0]} ${ops[0]} ${operands[1]} =`);
}

export async function evalArithmetic(
  s: LmSession,
  tok: Tokenizer,
  file: string,
  o: { calculator: boolean; forceRationale?: boolean; limit?: number; batch?: number },
): Promise<ArithEval> {
  const data = loadArithmetic(file).slice(0, o.limit ?? Infinity);
  if (data.length === 0) throw new UsageError(`${file}: no problems`);
  // the tool fires on the decoded text ending in "a op b =", whatever token carries the "="
  const fires = textTrigger(tok, '=', (text) => calculatorCompletion(text.replace(/^.*Answer:/, '')) !== null);
  const outputs: string[] = new Array(data.length).fill(o.forceRationale ? ' ' : '');
  const bs = o.batch ?? 100;
  for (let i0 = 0; i0 < data.length; i0 += bs) {
    const idx = data.slice(i0, i0 + bs).map((_, j) => i0 + j);
    let open = idx.slice();
    while (open.length > 0) {
      const prompts = open.map((i) => encodeX(tok, data[i].str_query + outputs[i]));
      const longest = Math.max(...prompts.map((p) => p.length));
      const room = s.facts.nCtx - longest;
      if (room < 1) break;
      const r = await sample(s, prompts, {
        maxNewTokens: room,
        temperature: 0,
        keepHidden: false,
        stopWhen: o.calculator ? (b, gen) => fires([...prompts[b], ...gen]) : undefined,
      });
      const next: number[] = [];
      open.forEach((i, b) => {
        const ids = Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b]));
        if (r.stopped[b] === 1) ids.pop();
        outputs[i] += tok.decode(ids, true);
        if (r.stopped[b] === 2) {
          const c = calculatorCompletion(data[i].str_query.replace(/^.*Answer:/, '') + outputs[i]);
          if (c !== null) {
            outputs[i] += c;
            next.push(i);
          }
        }
      });
      open = next;
    }
  }
  const examples = data.map((d, i) => ({
    query: d.str_query,
    output: outputs[i],
    correct: parseAnswer(outputs[i]) === d.num_sol,
    firstStep: firstStepRight(d.str_query, outputs[i]),
  }));
  const share = (f: (e: (typeof examples)[number]) => boolean) => examples.filter(f).length / data.length;
  return {
    file,
    n: data.length,
    calculator: o.calculator,
    forceRationale: o.forceRationale ?? false,
    accuracy: share((e) => e.correct),
    firstStep: share((e) => e.firstStep),
    withRationale: share((e) => /=/.test(e.output.split('The answer is')[0])),
    examples,
  };
}

/**
 * How much the base LM's reward log p(Y | X Z) prefers the correct rationale over one with a
 * single wrong step (the chain continuing from the wrong value), Y = the true answer — the
 * signal a posterior sampler of rationales needs (docs/design.md §2 (LM), R = p_LM(X Z Y)) — and
 * how weak its prior over rationales is: the mean log p(Z_correct | X) (leading space included).
 */
export async function rationaleRewardGap(
  s: LmSession,
  tok: Tokenizer,
  file: string,
  n: number,
  seed: number,
): Promise<{ n: number; meanGap: number; fracPrefersCorrect: number; meanLogPriorCorrect: number }> {
  const { Rng } = await import('../core/rng.js');
  const rng = new Rng(seed);
  const data = loadArithmetic(file).slice(0, n);
  const ctx: number[][] = [];
  const cont: number[][] = [];
  const zCorrect: number[][] = [];
  for (const d of data) {
    const { operands, ops } = parseQuery(d.str_query);
    const good = rationale(operands, ops);
    const delta = (rng.uniform() < 0.5 ? -1 : 1) * (1 + rng.int(3));
    const bad = rationale(operands, ops, rng.int(ops.length), delta);
    const y = tok.encode(answerText(good.final));
    zCorrect.push(tok.encode(` ${good.text}`));
    for (const z of [good.text, bad.text]) {
      ctx.push(encodeX(tok, `${d.str_query} ${z}`));
      cont.push(y);
    }
  }
  const { scoreBatch } = await import('../lm/scorer.js');
  const totals: number[] = [];
  for (let i = 0; i < ctx.length; i += 100) totals.push(...(await scoreBatch(s, ctx.slice(i, i + 100), cont.slice(i, i + 100))).total);
  // how much prior mass the base LM puts on the correct rationale: log p(" " Z_correct | X)
  let prior = 0;
  for (let i = 0; i < data.length; i += 100) {
    const r = await scoreBatch(
      s,
      data.slice(i, i + 100).map((d) => tok.encode(d.str_query)),
      zCorrect.slice(i, i + 100),
    );
    for (const t of r.total) prior += t / data.length;
  }
  let gap = 0;
  let wins = 0;
  for (let i = 0; i < data.length; i++) {
    const g = totals[2 * i] - totals[2 * i + 1];
    gap += g / data.length;
    if (g > 0) wins++;
  }
  return { n: data.length, meanGap: gap, fracPrefersCorrect: wins / data.length, meanLogPriorCorrect: prior };
}
