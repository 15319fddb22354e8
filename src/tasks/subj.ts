/**
 * Subjectivity (docs/design.md §6) as latent-rationale classification: X = the sentence (cut at
 * a word boundary to at most `maxChars` characters so X Z Y fits a small context window),
 * Z = a short free-text rationale, Y = " (objective)" or " (subjective)". A run trains on
 * 10/20/50 labelled pairs (configs/subj-{10,20,50}.yaml, made from the shared
 * train.{10,20,50}.jsonl by `subjPairs`). Prediction for a test sentence: for each of K
 * decoded Z, the label whose Y the frozen LM finds likelier, log p(Y_c | X Z); then the
 * majority over the K samples (ties → the larger summed log-likelihood margin).
 */
import { readTextFile } from '../core/io.js';
import { encodeX } from '../lm/tokenizer.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { scoreBatch } from '../lm/scorer.js';
import { decodeZ, describeDecode, type Decoder, type DecodeSpec } from './decode.js';

export const SUBJ_LABELS = ['objective', 'subjective'] as const;
export const subjY = (label: string) => ` (${label})`;

export function cutWords(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const cut = text.slice(0, maxChars + 1);
  const sp = cut.lastIndexOf(' ');
  return (sp > 0 ? cut.slice(0, sp) : text.slice(0, maxChars)).trimEnd();
}

export interface SubjItem {
  text: string;
  label: number; // 0 objective, 1 subjective
}

export function readSubj(file: string, maxChars: number, limit?: number): SubjItem[] {
  let lines: string[];
  try {
    lines = readTextFile(file)
      .split('\n')
      .filter((l) => l.trim());
  } catch (err) {
    if (err instanceof UsageError) throw err; // strict UTF-8: names the file and line
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const items = lines.slice(0, limit ?? lines.length).map((l, i) => {
    let o: { text?: unknown; label?: unknown };
    try {
      o = JSON.parse(l);
    } catch {
      throw new UsageError(`${file}:${i + 1}: not JSON`);
    }
    if (typeof o.text !== 'string' || (o.label !== 0 && o.label !== 1))
      throw new UsageError(`${file}:${i + 1}: needs "text" and "label" 0 or 1`);
    return { text: cutWords(o.text, maxChars), label: o.label };
  });
  if (items.length === 0) throw new UsageError(`${file}: no items`);
  return items;
}

/** Training pairs for a config (task.kind pairs): x = sentence, y = " (label)". */
export function subjPairs(file: string, maxChars: number): { x: string; y: string }[] {
  return readSubj(file, maxChars).map((it) => ({ x: it.text, y: subjY(SUBJ_LABELS[it.label]) }));
}

export interface SubjSummary {
  n: number;
  samples: number;
  decode: string;
  accuracy: number;
  sampleAccuracy: number;
  predictedSubjective: number;
  seconds: number;
}

export interface SubjItemResult {
  index: number;
  text: string;
  label: number;
  predicted: number;
  samples: { z: string; margin: number }[]; // margin = log p(subjective) − log p(objective)
}

export async function evalSubj(
  dec: Decoder,
  items: SubjItem[],
  o: { samples: number; decode: DecodeSpec; seed: number },
): Promise<{ summary: SubjSummary; items: SubjItemResult[] }> {
  const t0 = performance.now();
  const { session, tok } = dec;
  const yIds = SUBJ_LABELS.map((l) => tok.encode(subjY(l)));
  const xs = items.map((it) => encodeX(tok, it.text));
  xs.forEach((x, i) => {
    const need = x.length + dec.constraints.maxLength + Math.max(...yIds.map((y) => y.length)) + 1;
    if (need > session.facts.nCtx)
      throw new UsageError(`subj item ${i} needs ${need} tokens, more than the context window of ${session.facts.nCtx}; lower --max-chars`);
  });
  const zs = await decodeZ(dec, xs, o.samples, o.decode, new Rng(o.seed));
  const ctx: number[][] = [],
    cont: number[][] = [];
  zs.forEach((ks, i) => ks.forEach((z) => yIds.forEach((y) => (ctx.push([...xs[i], ...z.tokens]), cont.push(y)))));
  const total: number[] = [];
  for (let i = 0; i < ctx.length; i += 256)
    total.push(...(await scoreBatch(dec.baseSession ?? session, ctx.slice(i, i + 256), cont.slice(i, i + 256))).total);
  const K = o.samples;
  const results = items.map((it, i) => {
    const samples = zs[i].map((z, j) => ({ z: tok.decode(z.tokens, true), margin: total[(i * K + j) * 2 + 1] - total[(i * K + j) * 2] }));
    const votes = samples.filter((s) => s.margin > 0).length;
    const sum = samples.reduce((s, x) => s + x.margin, 0);
    const predicted = 2 * votes > K ? 1 : 2 * votes < K ? 0 : sum > 0 ? 1 : 0;
    return { index: i, text: it.text, label: it.label, predicted, samples };
  });
  const n = results.length;
  return {
    summary: {
      n,
      samples: K,
      decode: describeDecode(o.decode),
      accuracy: results.filter((r) => r.predicted === r.label).length / n,
      sampleAccuracy: results.reduce((s, r) => s + r.samples.filter((x) => (x.margin > 0 ? 1 : 0) === r.label).length / K, 0) / n,
      predictedSubjective: results.filter((r) => r.predicted === 1).length / n,
      seconds: (performance.now() - t0) / 1000,
    },
    items: results,
  };
}
