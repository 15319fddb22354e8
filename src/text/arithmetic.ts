/**
 * The arithmetic task's text format (docs/design.md §6) and its calculator tool, shared by
 * the pre-training corpus, the token-level environment (the tool is an environment step,
 * not a policy action) and the evaluation: X = "Question: 6 - 0 - 4 = ? Answer:",
 * Z = "6 - 0 = 6, 6 - 4 = 2", Y = ". The answer is 2.".
 */
import { readTextFile } from '../core/io.js';
import { UsageError } from '../core/errors.js';

export interface ArithmeticProblem {
  /** X, e.g. "Question: 6 - 0 - 4 - 8 = ? Answer:" */
  query: string;
  operands: number[];
  ops: ('+' | '-')[];
  answer: number;
}

/** "a op b op c …", the expression of a question. */
export function expression(operands: number[], ops: string[]): string {
  let e = String(operands[0]);
  for (let i = 0; i < ops.length; i++) e += ` ${ops[i]} ${operands[i + 1]}`;
  return e;
}

export function makeQuery(operands: number[], ops: string[]): string {
  return `Question: ${expression(operands, ops)} = ? Answer:`;
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

/** Loads the queries of an arithmetic JSON file (train/pool/test format). */
export function loadArithmetic(file: string): { str_query: string; num_sol: number; str_rationale?: string; str_sol?: string }[] {
  try {
    return JSON.parse(readTextFile(file));
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`${file}: cannot read arithmetic data (${(err as Error).message.split('\n')[0]})`);
  }
}

export function parseAnswer(text: string): number | null {
  const m = /The answer is (-?\d+)\./.exec(text);
  return m ? Number(m[1]) : null;
}

/** Completes a trailing "a op b =" with the calculator's " c"; null when the text doesn't end so. */
export function calculatorCompletion(text: string): string | null {
  const m = /(-?\d+) ([+\-*]) (-?\d+) =$/.exec(text);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[3]);
  return ` ${m[2] === '+' ? a + b : m[2] === '-' ? a - b : a * b}`;
}
