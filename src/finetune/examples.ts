import { encodeX } from '../lm/tokenizer.js';
import { Rng } from '../core/rng.js';
import { readTextFile } from '../core/io.js';
import { UsageError } from '../core/errors.js';
import type { Tokenizer } from '../lm/tokenizer.js';
import { calculatorCompletion } from '../text/arithmetic.js';
import type { TrainConfig } from './schema.js';
import type { ZSample } from './rollout.js';

/** One (X, Y) with its token ids and, where the data has one, a gold Z. */
export interface Example {
  key: string;
  x: string;
  y: string;
  xIds: number[];
  yIds: number[];
  gold?: ZSample;
}

/**
 * The (X, Y) pairs a config trains on. Arithmetic (docs/design.md §6): X = str_query, Y = str_sol,
 * gold Z = " " + str_rationale with every "a op b =" completed by the calculator (the layout
 * of the base model's corpus: "X Z Y").
 */
export function loadExamples(cfg: TrainConfig, tok: Tokenizer): Example[] {
  const t = cfg.task;
  let raw: { x: string; y: string; z?: string }[] = [];
  if (t.kind === 'pairs') raw = t.pairs;
  else if (t.kind === 'arithmetic') {
    for (const file of [...t.train, ...t.pool]) {
      for (const item of readJsonArray(file)) {
        const q = item.str_query,
          sol = item.str_sol ?? (item.num_sol !== undefined ? `. The answer is ${item.num_sol}.` : undefined);
        if (typeof q !== 'string' || typeof sol !== 'string')
          throw new UsageError(`${file}: every item needs str_query and str_sol (or num_sol)`);
        raw.push({ x: q, y: sol, z: typeof item.str_rationale === 'string' ? ' ' + item.str_rationale : undefined });
      }
    }
  } else {
    if (!t.sentences)
      throw new UsageError('task.kind infill needs task.sentences (a text file, one sentence per line, or JSONL with "text")');
    raw = infillSplits(readSentences(t.sentences), cfg.seed);
  }
  if (t.limit) raw = raw.slice(0, t.limit);
  if (raw.length === 0) throw new UsageError('the task has no (X, Y) examples');
  return raw.map((r) => {
    const ex: Example = { key: `${r.x}\u0000${r.y}`, x: r.x, y: r.y, xIds: encodeX(tok, r.x), yIds: tok.encode(r.y) };
    if (r.z !== undefined) ex.gold = goldZ(r.z, tok, cfg.z.tool === 'calculator', t.kind === 'arithmetic');
    return ex;
  });
}

/**
 * A gold rationale as the policy would have produced it: tool results are not actions.
 * `fillResults` (arithmetic without the tool): the data's rationales leave every "a op b ="
 * open for the calculator, so the results are written in as the policy's own tokens.
 */
export function goldZ(z: string, tok: Tokenizer, tool: boolean, fillResults = false): ZSample {
  const tokens: number[] = [];
  const isAction: number[] = [];
  let text = '';
  for (const ch of z) {
    for (const id of tok.encode(ch)) {
      tokens.push(id);
      isAction.push(1);
    }
    text += ch;
    if ((tool || fillResults) && ch === '=') {
      const c = calculatorCompletion(text);
      if (c !== null) {
        for (const id of tok.encode(c)) {
          tokens.push(id);
          isAction.push(tool ? 0 : 1);
        }
        text += c;
      }
    }
  }
  return { tokens, isAction: Uint8Array.from(isAction) };
}

function readJsonArray(file: string): Record<string, unknown>[] {
  let data: unknown;
  try {
    data = JSON.parse(readTextFile(file));
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]}`);
  }
  if (!Array.isArray(data)) throw new UsageError(`${file} must hold a JSON array`);
  return data as Record<string, unknown>[];
}

/**
 * Infilling examples from sentences (docs/design.md §6): a seeded middle span of 1–3 words is Z,
 * the words before it X, the words after it Y, so that X Z Y is the sentence again
 * (Z and Y start with their separating space). Sentences under 6 words are skipped.
 */
export function infillSplits(sentences: string[], seed: number): { x: string; y: string; z: string }[] {
  const rng = new Rng(seed);
  const out: { x: string; y: string; z: string }[] = [];
  for (const s of sentences) {
    const w = s.trim().split(/\s+/);
    if (w.length < 6) continue;
    const len = 1 + rng.int(3);
    const start = Math.floor(w.length / 3) + rng.int(Math.max(1, Math.floor(w.length / 3) - len + 1));
    const end = Math.min(w.length - 1, start + len);
    out.push({ x: w.slice(0, start).join(' '), z: ' ' + w.slice(start, end).join(' '), y: ' ' + w.slice(end).join(' ') });
  }
  return out;
}

export function readSentences(file: string): string[] {
  let text: string;
  try {
    text = readTextFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (l.trim().startsWith('{') ? String((JSON.parse(l) as { text?: unknown }).text ?? '') : l.trim()))
    .filter((l) => l.length > 0);
}
