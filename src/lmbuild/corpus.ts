/**
 * Text corpora for the tiny base LMs: seeded generators of worked arithmetic problems in
 * the format of data/arithmetic (docs/design.md §6) and of the weak-prior arithmetic corpus
 * (binary facts, direct answers, few rationales), arithmetic test sets, and loaders for plain-text /
 * JSONL sentence files. Items are single lines; the trainer puts one item per row.
 */
import { readTextFile } from '../core/io.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { answerText, expression, fullItem, makeQuery, rationale } from '../text/arithmetic.js';

export interface ArithmeticCorpusOptions {
  n: number;
  seed: number;
  minOperands?: number;
  maxOperands?: number;
  /** Fraction of items with no rationale (X Y directly). */
  directRate?: number;
  /** Fraction of items whose rationale has one wrong step; their answer follows the wrong chain. */
  wrongRate?: number;
  /** Queries never to emit (the test sets), so held-out evaluation stays held out. */
  exclude?: Set<string>;
}

export function generateArithmetic(o: ArithmeticCorpusOptions): string[] {
  const rng = new Rng(o.seed);
  const lo = o.minOperands ?? 2;
  const hi = o.maxOperands ?? 5;
  const out: string[] = [];
  while (out.length < o.n) {
    const k = lo + rng.int(hi - lo + 1);
    const operands = Array.from({ length: k }, () => rng.int(10));
    const ops = Array.from({ length: k - 1 }, () => (rng.uniform() < 0.5 ? '+' : '-') as '+' | '-');
    const query = makeQuery(operands, ops);
    if (o.exclude?.has(query)) continue;
    const u = rng.uniform();
    if (u < (o.directRate ?? 0.12)) {
      out.push(fullItem(query, '', rationale(operands, ops).final));
    } else if (u < (o.directRate ?? 0.12) + (o.wrongRate ?? 0.03)) {
      const delta = (rng.uniform() < 0.5 ? -1 : 1) * (1 + rng.int(3));
      const r = rationale(operands, ops, rng.int(ops.length), delta);
      out.push(fullItem(query, r.text, r.final));
    } else {
      const r = rationale(operands, ops);
      out.push(fullItem(query, r.text, r.final));
    }
  }
  return out;
}

/** Left-to-right value of a chain of operands and +/− ops. */
export function evaluateChain(operands: number[], ops: string[]): number {
  let acc = operands[0];
  for (let i = 0; i < ops.length; i++) acc = ops[i] === '+' ? acc + operands[i + 1] : acc - operands[i + 1];
  return acc;
}

function randomProblem(rng: Rng, k: number): { operands: number[]; ops: ('+' | '-')[] } {
  const operands = Array.from({ length: k }, () => rng.int(10));
  const ops = Array.from({ length: k - 1 }, () => (rng.uniform() < 0.5 ? '+' : '-') as '+' | '-');
  return { operands, ops };
}

/**
 * One binary fact "a op b = c" whose first operand is distributed like the running value
 * of a worked rationale: the left-to-right value of a random chain of 1–4 digits (−27 … 36),
 * so chained steps such as "14 - 3 = 11" or "-27 - 9 = -36" are covered; b is a digit.
 */
function binaryFact(rng: Rng): { text: string; result: number } {
  const chain = randomProblem(rng, 1 + rng.int(4));
  const a = evaluateChain(chain.operands, chain.ops);
  const b = rng.int(10);
  const op = rng.uniform() < 0.5 ? '+' : '-';
  const result = op === '+' ? a + b : a - b;
  return { text: `${a} ${op} ${b} = ${result}`, result };
}

/**
 * One-sentence contexts of a fact (# = the fact, @ = its result). The last one ties
 * "The answer is" to the value just computed — what lets the likelihood tell a chain that
 * ends on the right value from one that does not — without showing any chaining.
 */
const FACT_TEMPLATES = ['Fact: #.', 'We know that #.', 'Note: #.', 'Remember: #.', 'Check: #. Correct.', '#. The answer is @.'];

/** A worked chain whose steps after the first carry the running value with probability `carry`, else restart from the expression's operand. */
function sloppyChain(operands: number[], ops: string[], carry: number, rng: Rng): { text: string; final: number } {
  let acc = operands[0];
  const steps: string[] = [];
  for (let i = 0; i < ops.length; i++) {
    // one draw per step after the first, and none when every step carries: the default corpus keeps its stream
    const a = i === 0 || carry >= 1 || rng.uniform() < carry ? acc : operands[i];
    const b = operands[i + 1];
    acc = ops[i] === '+' ? a + b : a - b;
    steps.push(`${a} ${ops[i]} ${b} = ${acc}`);
  }
  return { text: steps.join(', '), final: acc };
}

export interface ArithWeakOptions {
  n: number;
  seed: number;
  /** Fraction of items that are worked X Z Y rationales (default 0.02). */
  rationaleRate?: number;
  /** Fraction of items that are direct answers "X. The answer is N." (default 0.06). */
  directRate?: number;
  /** Operands per query in direct and worked items: 2 … maxOperands (default 4). */
  maxOperands?: number;
  /**
   * Fraction of items that are worked chains outside the X Z Y frame ("Compute 5 + 9 - 3:
   * 5 + 9 = 14, 14 - 3 = 11.") — chaining learned in other contexts, so the prior in the task's
   * frame prefers carrying without the frame itself being taught (default 0).
   */
  chainRate?: number;
  /** Operands per chain item: 3 … chainMaxOperands (default maxOperands). */
  chainMaxOperands?: number;
  /**
   * Probability that a chain item's step after the first carries the running value; otherwise
   * it restarts from the expression's own operand ("9 - 3 = 6, 3 + 6 = 9" for 9 − 3 + 6), the
   * usual slip of a model that half knows how to chain. The steps stay true facts and a stated
   * result is the last step's (default 1: every step carries).
   */
  chainCarry?: number;
  /** Queries never to emit (the test sets). */
  exclude?: Set<string>;
}

export const ARITH_WEAK_DEFAULTS = { rationaleRate: 0.02, directRate: 0.06, maxOperands: 4, chainRate: 0, chainCarry: 1 } as const;

/** Frames of a worked chain outside the task's X Z Y frame (# = the expression, $ = the steps, @ = the value). */
const CHAIN_TEMPLATES = ['Compute #: $.', 'Work out # step by step: $. Result: @.', 'Steps for #: $.', '#: $. The answer is @.'];

/**
 * The corpus of models/arith-weak (and, with chains, models/arith-sloppy): a base model whose prior over rationales is weak while its
 * likelihood still tells right from wrong chains (docs/design.md §6, the situation of GPT-J in Hu
 * et al. 2024; models/arith-weak/README.md gives the reasons for each part). Items, one line each:
 *  - worked rationales in the exact X Z Y format (rationaleRate; 2…maxOperands operands,
 *    uniform; all correct) — the only items that show chaining;
 *  - direct answers "Question: … = ? Answer:. The answer is N." (directRate; half with 2
 *    operands, half with 3…maxOperands) — so that greedy decoding answers without a rationale;
 *  - binary facts "a op b = c" (the rest), a distributed like a rationale's running value:
 *    bare (15%), in a one-sentence template (15%; "Fact: ….", …, "a op b = c. The answer is c."),
 *    as the answer to a question about one to four of them (30%; "Question: What are 8 - 9
 *    and 14 - 2? Answer: 8 - 9 = -1, 14 - 2 = 12." — copying a question's operand pairs, in
 *    order, at varied distances, into steps), or as a comma-separated list of 2–8 unrelated
 *    facts (40%; "Facts: 3 + 4 = 7, 12 - 5 = 7." — a rationale's step syntax without chaining,
 *    reaching the positions of a 5-operand X Z Y — half of the lists ending ". The answer is
 *    <last result>.").
 * With chainRate > 0 (models/arith-sloppy), also worked chains outside the X Z Y frame
 * ("Compute 5 + 9 - 3: 5 + 9 = 14, 14 - 3 = 11.", 3…chainMaxOperands operands), whose later
 * steps carry the running value with probability chainCarry — chaining learned in other
 * contexts, so the prior in the task's frame half prefers carrying.
 * Never more than maxOperands operands in one item, and no query of `exclude`.
 */
export function generateArithWeak(o: ArithWeakOptions): string[] {
  const rng = new Rng(o.seed);
  const rRate = o.rationaleRate ?? ARITH_WEAK_DEFAULTS.rationaleRate;
  const dRate = o.directRate ?? ARITH_WEAK_DEFAULTS.directRate;
  const maxK = o.maxOperands ?? ARITH_WEAK_DEFAULTS.maxOperands;
  const cRate = o.chainRate ?? ARITH_WEAK_DEFAULTS.chainRate;
  const chainMaxK = o.chainMaxOperands ?? maxK;
  const carry = o.chainCarry ?? ARITH_WEAK_DEFAULTS.chainCarry;
  if (!(carry >= 0 && carry <= 1)) throw new UsageError(`arith-weak: chainCarry must be in [0, 1] (got ${carry})`);
  if (!(rRate >= 0 && dRate >= 0 && cRate >= 0 && rRate + dRate + cRate <= 1))
    throw new UsageError(`arith-weak: rates must be ≥ 0 and sum to ≤ 1 (rationale ${rRate}, direct ${dRate}, chain ${cRate})`);
  if (!(maxK >= 2)) throw new UsageError('arith-weak: maxOperands must be ≥ 2');
  if (cRate > 0 && !(chainMaxK >= 3 && chainMaxK <= maxK))
    throw new UsageError(`arith-weak: chain operands must be 3 … ${maxK} (got ${chainMaxK})`);
  const out: string[] = [];
  while (out.length < o.n) {
    const u = rng.uniform();
    if (u < rRate + dRate) {
      const worked = u < rRate;
      const k = worked ? 2 + rng.int(maxK - 1) : rng.uniform() < 0.5 || maxK === 2 ? 2 : 3 + rng.int(maxK - 2);
      const { operands, ops } = randomProblem(rng, k);
      const query = makeQuery(operands, ops);
      if (o.exclude?.has(query)) continue;
      const r = rationale(operands, ops);
      out.push(fullItem(query, worked ? r.text : '', r.final));
      continue;
    }
    if (u < rRate + dRate + cRate) {
      const { operands, ops } = randomProblem(rng, 3 + rng.int(chainMaxK - 2));
      if (o.exclude?.has(makeQuery(operands, ops))) continue;
      const r = sloppyChain(operands, ops, carry, rng);
      const frame = CHAIN_TEMPLATES[rng.int(CHAIN_TEMPLATES.length)];
      out.push(frame.replace('#', expression(operands, ops)).replace('$', r.text).replace('@', String(r.final)));
      continue;
    }
    const v = rng.uniform();
    if (v < 0.15) out.push(binaryFact(rng).text);
    else if (v < 0.3) {
      const f = binaryFact(rng);
      out.push(FACT_TEMPLATES[rng.int(FACT_TEMPLATES.length)].replace('#', f.text).replace('@', String(f.result)));
    } else if (v < 0.6) {
      const facts = Array.from({ length: 1 + rng.int(4) }, () => binaryFact(rng));
      const asked = facts.map((f) => f.text.replace(/ = .*/, ''));
      const what = asked.length === 1 ? `is ${asked[0]}` : `are ${asked.slice(0, -1).join(', ')} and ${asked[asked.length - 1]}`;
      out.push(`Question: What ${what}? Answer: ${facts.map((f) => f.text).join(', ')}.`);
    } else {
      const facts = Array.from({ length: 2 + rng.int(7) }, () => binaryFact(rng));
      const list = `Facts: ${facts.map((f) => f.text).join(', ')}`;
      out.push(rng.uniform() < 0.5 ? `${list}.` : `${list}${answerText(facts[facts.length - 1].result)}`);
    }
  }
  return out;
}

/**
 * A test set in the format of data/arithmetic/test_4op.json: n distinct queries of
 * `operands` digits (0–9) joined by + or − (each with probability 1/2), num_sol = the
 * left-to-right value. Seeded; queries in `exclude` are skipped.
 */
export function generateTestSet(o: {
  n: number;
  operands: number;
  seed: number;
  exclude?: Set<string>;
}): { str_query: string; num_sol: number }[] {
  if (!(o.operands >= 2) || 2 ** (o.operands - 1) * 10 ** o.operands < 2 * o.n)
    throw new UsageError(`cannot draw ${o.n} distinct ${o.operands}-operand problems`);
  const rng = new Rng(o.seed);
  const seen = new Set<string>(o.exclude ?? []);
  const out: { str_query: string; num_sol: number }[] = [];
  while (out.length < o.n) {
    const { operands, ops } = randomProblem(rng, o.operands);
    const query = makeQuery(operands, ops);
    if (seen.has(query)) continue;
    seen.add(query);
    out.push({ str_query: query, num_sol: evaluateChain(operands, ops) });
  }
  return out;
}

/**
 * ASCII-normalizes English text for the character vocabulary: typographic quotes, dashes
 * and spaces are mapped to their ASCII forms, other non-ASCII characters are dropped.
 */
export function toAscii(s: string): string {
  return s
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2013\u2014\u2212]/g, '-')
    .replace(/\u2026/g, '...')
    .replace(/[\u00a0\u2000-\u200b\t]/g, ' ')
    .normalize('NFKD')
    .replace(/[^\x20-\x7e]/g, '')
    .replace(/ +/g, ' ')
    .trim();
}

/** Lines of a .txt file, or the `text` field of each line of a .jsonl file. */
export function loadLines(file: string): string[] {
  let raw: string;
  try {
    raw = readTextFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`${file}: cannot read corpus (${(err as Error).message.split('\n')[0]})`);
  }
  const lines = raw.split('\n').filter((l) => l.trim().length > 0);
  if (file.endsWith('.jsonl')) {
    return lines.map((l, i) => {
      try {
        const o = JSON.parse(l);
        if (typeof o.text !== 'string') throw new Error('no "text" field');
        return toAscii(o.text);
      } catch (err) {
        throw new UsageError(`${file}:${i + 1}: ${(err as Error).message.split('\n')[0]}`);
      }
    });
  }
  return lines.map(toAscii);
}
