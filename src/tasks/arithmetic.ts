/**
 * Arithmetic with a calculator tool (docs/design.md §6): for each question X, K rationales Z are
 * decoded (tool results appended by the calculator), each followed by the base LM's greedy
 * continuation Y; the answer is parsed from "The answer is N." in Z Y (so a base LM that
 * writes its answer inside Z is read the same way). Reported: accuracy of the majority
 * vote over the K answers, of one greedy (argmax) decode, and of a single sample on average,
 * plus the fraction of distinct rationales among the K (diversity; 1/K = collapse).
 */
import { encodeX } from '../lm/tokenizer.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { loadArithmetic, parseAnswer } from '../text/arithmetic.js';
import { continueGreedy, decodeZ, describeDecode, type Decoder, type DecodeSpec } from './decode.js';

export interface ArithSample {
  z: string;
  y: string;
  answer: number | null;
}

export interface ArithItemResult {
  index: number;
  query: string;
  answer: number;
  samples: ArithSample[];
  vote: number | null;
  voteCorrect: boolean;
  greedy: ArithSample & { correct: boolean };
}

export interface ArithSummary {
  file: string;
  n: number;
  samples: number;
  decode: string;
  majorityAccuracy: number;
  greedyAccuracy: number;
  sampleAccuracy: number;
  distinctZ: number;
  seconds: number;
}

/** The most frequent non-null answer; ties go to the one that appeared first. null if none parsed. */
export function majorityVote(answers: (number | null)[]): number | null {
  const counts = new Map<number, number>(); // insertion order = order of first appearance
  for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best: number | null = null,
    bestCount = 0;
  for (const [a, c] of counts) if (c > bestCount) (best = a), (bestCount = c);
  return best;
}

export async function evalArithmeticFile(
  dec: Decoder,
  file: string,
  o: { samples: number; decode: DecodeSpec; seed: number; limit?: number },
): Promise<{ summary: ArithSummary; items: ArithItemResult[] }> {
  const t0 = performance.now();
  const data = loadArithmetic(file);
  if (!Array.isArray(data)) throw new UsageError(`${file} must hold a JSON array`);
  const items = data.slice(0, o.limit ?? data.length);
  if (items.length === 0) throw new UsageError(`${file}: no problems`);
  for (const [i, it] of items.entries()) {
    if (typeof it.str_query !== 'string' || typeof it.num_sol !== 'number')
      throw new UsageError(`${file}: item ${i} needs str_query and num_sol`);
  }
  const { session, tok } = dec;
  const xs = items.map((it) => encodeX(tok, it.str_query));
  const longest = Math.max(...xs.map((x) => x.length));
  if (longest + dec.constraints.maxLength + 1 > session.facts.nCtx)
    throw new UsageError(
      `a question of ${longest} tokens plus Z (up to ${dec.constraints.maxLength}) exceeds the model's context window of ${session.facts.nCtx}`,
    );
  const rng = new Rng(o.seed);
  const zs = await decodeZ(dec, xs, o.samples, o.decode, rng);
  const greedyZ = o.decode.kind === 'greedy' ? zs.map((k) => k[0]) : (await decodeZ(dec, xs, 1, { kind: 'greedy' }, rng)).map((k) => k[0]);
  // Y for every distinct (item, Z): greedy continuation of X Z
  const prefixes: number[][] = [],
    owners: string[] = [];
  const seen = new Map<string, number>();
  const keyOf = (i: number, z: number[]) => `${i}:${z.join(',')}`;
  const want = (i: number, z: number[]) => {
    const k = keyOf(i, z);
    if (!seen.has(k)) {
      seen.set(k, prefixes.length);
      prefixes.push([...xs[i], ...z]);
      owners.push(k);
    }
  };
  zs.forEach((ks, i) => ks.forEach((z) => want(i, z.tokens)));
  greedyZ.forEach((z, i) => want(i, z.tokens));
  const ys = await continueGreedy(dec.baseSession ?? session, tok, prefixes);
  const one = (i: number, z: number[]): ArithSample => {
    const zText = tok.decode(z, true),
      y = ys[seen.get(keyOf(i, z))!];
    return { z: zText, y, answer: parseAnswer(zText + y) };
  };
  const results: ArithItemResult[] = items.map((it, i) => {
    const samples = zs[i].map((z) => one(i, z.tokens));
    const vote = majorityVote(samples.map((s) => s.answer));
    const g = one(i, greedyZ[i].tokens);
    return {
      index: i,
      query: it.str_query,
      answer: it.num_sol,
      samples,
      vote,
      voteCorrect: vote === it.num_sol,
      greedy: { ...g, correct: g.answer === it.num_sol },
    };
  });
  const n = results.length,
    K = o.samples;
  return {
    summary: {
      file,
      n,
      samples: K,
      decode: describeDecode(o.decode),
      majorityAccuracy: results.filter((r) => r.voteCorrect).length / n,
      greedyAccuracy: results.filter((r) => r.greedy.correct).length / n,
      sampleAccuracy: results.reduce((s, r) => s + r.samples.filter((x) => x.answer === r.answer).length / K, 0) / n,
      distinctZ: results.reduce((s, r) => s + new Set(r.samples.map((x) => x.z)).size / K, 0) / n,
      seconds: (performance.now() - t0) / 1000,
    },
    items: results,
  };
}
