/**
 * Text corpora for the tiny base LMs: a seeded generator of worked arithmetic problems in
 * the format of ../shared/data/arithmetic (DESIGN.md §6), and loaders for plain-text /
 * JSONL sentence files. Items are single lines; the trainer puts one item per row.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';

export interface ArithmeticProblem {
  /** X, e.g. "Question: 6 - 0 - 4 - 8 = ? Answer:" */
  query: string;
  operands: number[];
  ops: ('+' | '-')[];
  answer: number;
}

export function makeQuery(operands: number[], ops: string[]): string {
  let e = String(operands[0]);
  for (let i = 0; i < ops.length; i++) e += ` ${ops[i]} ${operands[i + 1]}`;
  return `Question: ${e} = ? Answer:`;
}

export function parseQuery(query: string): { operands: number[]; ops: ('+' | '-')[] } {
  const m = /^Question: (.*) = \? Answer:$/.exec(query.trim());
  if (!m) throw new UsageError(`not an arithmetic query: ${JSON.stringify(query)}`);
  const parts = m[1].split(' ');
  const operands: number[] = [];
  const ops: ('+' | '-')[] = [];
  parts.forEach((p, i) => (i % 2 === 0 ? operands.push(Number(p)) : ops.push(p as '+' | '-')));
  return { operands, ops };
}

/**
 * The calculator-completed rationale Z: "a op b = c, c op d = e, ..." (each "a op b =" is
 * what the data's str_rationale holds; the tool appends the result). `wrongStep` ≥ 0 makes
 * that step's result off by `delta`, and later steps continue from the wrong value.
 */
export function rationale(operands: number[], ops: string[], wrongStep = -1, delta = 0): { text: string; final: number } {
  let acc = operands[0];
  const steps: string[] = [];
  for (let i = 0; i < ops.length; i++) {
    const b = operands[i + 1];
    let r = ops[i] === '+' ? acc + b : acc - b;
    if (i === wrongStep) r += delta;
    steps.push(`${acc} ${ops[i]} ${b} = ${r}`);
    acc = r;
  }
  return { text: steps.join(', '), final: acc };
}

export function answerText(n: number): string {
  return `. The answer is ${n}.`;
}

/** X Z Y as one line: the layout the base model is trained on and the tasks score. */
export function fullItem(query: string, z: string, answer: number): string {
  return z.length > 0 ? `${query} ${z}${answerText(answer)}` : `${query}${answerText(answer)}`;
}

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

/** Loads the queries of an arithmetic JSON file (train/pool/test format). */
export function loadArithmetic(file: string): { str_query: string; num_sol: number; str_rationale?: string; str_sol?: string }[] {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file}: cannot read arithmetic data (${(err as Error).message.split('\n')[0]})`);
  }
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
    raw = readFileSync(file, 'utf8');
  } catch (err) {
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
