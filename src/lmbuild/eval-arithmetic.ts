/**
 * Greedy accuracy of a base LM on the arithmetic task (docs/design.md §6): X = the query, the
 * model writes Z and Y; correct when "The answer is N." has N = num_sol. Two settings:
 * free (the model writes every intermediate result) and with the calculator tool (each
 * "a op b =" the model writes is completed by the tool with " <result>").
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
  examples: { query: string; output: string; correct: boolean }[];
}

export async function evalArithmetic(
  s: LmSession,
  tok: Tokenizer,
  file: string,
  o: { calculator: boolean; limit?: number; batch?: number },
): Promise<ArithEval> {
  const data = loadArithmetic(file).slice(0, o.limit ?? Infinity);
  if (data.length === 0) throw new UsageError(`${file}: no problems`);
  // the tool fires on the decoded text ending in "a op b =", whatever token carries the "="
  const fires = textTrigger(tok, '=', (text) => calculatorCompletion(text.replace(/^.*Answer:/, '')) !== null);
  const outputs: string[] = new Array(data.length).fill('');
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
  const examples = data.map((d, i) => ({ query: d.str_query, output: outputs[i], correct: parseAnswer(outputs[i]) === d.num_sol }));
  return { file, n: data.length, calculator: o.calculator, accuracy: examples.filter((e) => e.correct).length / data.length, examples };
}

/**
 * How much the base LM's reward log p(Y | X Z) prefers the correct rationale over one with a
 * single wrong step (the chain continuing from the wrong value), Y = the true answer — the
 * signal a posterior sampler of rationales needs (docs/design.md §2 (LM), R = p_LM(X Z Y)).
 */
export async function rationaleRewardGap(
  s: LmSession,
  tok: Tokenizer,
  file: string,
  n: number,
  seed: number,
): Promise<{ n: number; meanGap: number; fracPrefersCorrect: number }> {
  const { Rng } = await import('../core/rng.js');
  const rng = new Rng(seed);
  const data = loadArithmetic(file).slice(0, n);
  const ctx: number[][] = [];
  const cont: number[][] = [];
  for (const d of data) {
    const { operands, ops } = parseQuery(d.str_query);
    const good = rationale(operands, ops);
    const delta = (rng.uniform() < 0.5 ? -1 : 1) * (1 + rng.int(3));
    const bad = rationale(operands, ops, rng.int(ops.length), delta);
    const y = tok.encode(answerText(good.final));
    for (const z of [good.text, bad.text]) {
      ctx.push(encodeX(tok, `${d.str_query} ${z}`));
      cont.push(y);
    }
  }
  const { scoreBatch } = await import('../lm/scorer.js');
  const totals: number[] = [];
  for (let i = 0; i < ctx.length; i += 100) totals.push(...(await scoreBatch(s, ctx.slice(i, i + 100), cont.slice(i, i + 100))).total);
  let gap = 0;
  let wins = 0;
  for (let i = 0; i < data.length; i++) {
    const g = totals[2 * i] - totals[2 * i + 1];
    gap += g / data.length;
    if (g > 0) wins++;
  }
  return { n: data.length, meanGap: gap, fracPrefersCorrect: wins / data.length };
}
