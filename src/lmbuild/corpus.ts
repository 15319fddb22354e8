/**
 * Text corpora for the tiny base LMs: a seeded generator of worked arithmetic problems in
 * the format of data/arithmetic (docs/design.md §6), and loaders for plain-text /
 * JSONL sentence files. Items are single lines; the trainer puts one item per row.
 */
import { readTextFile } from '../core/io.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { fullItem, makeQuery, rationale } from '../text/arithmetic.js';

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
