/**
 * One entry point for the three text tasks, shared by `flowtune eval` and `flowtune
 * compare`: decode with a policy, score, and flatten the summaries into table columns.
 */
import { basename } from 'node:path';
import { UsageError } from '../core/errors.js';
import type { TrainConfig } from '../finetune/schema.js';
import type { Decoder, DecodeSpec } from './decode.js';
import { evalArithmeticFile, type ArithSummary } from './arithmetic.js';
import { evalInfill, heldOutInfill, type InfillSummary } from './infill.js';
import { evalSubj, readSubj, type SubjSummary } from './subj.js';
import type { TaskName } from './policy.js';

export interface EvalOptions {
  samples: number;
  decode: DecodeSpec;
  seed: number;
  /** arithmetic / subj: test files; infill: the sentence file (default: the run's task.sentences) */
  data: string[];
  /** arithmetic / subj: first N items of each file; infill: number of held-out items (default 50) */
  limit?: number;
  /** infill: first held-out item (default: the run's task.limit) */
  offset?: number;
  /** infill: seed of the span split (default: the run's seed) */
  splitSeed?: number;
  /** subj: sentences are cut at a word boundary to this many characters */
  maxChars?: number;
}

export interface EvalPart {
  label: string; // e.g. test_3op
  summary: ArithSummary | InfillSummary | SubjSummary;
  items: unknown[];
}

export const label = (file: string) => basename(file).replace(/\.(json|jsonl|txt)$/, '');

export async function evaluateTask(task: TaskName, dec: Decoder, cfg: TrainConfig | null, o: EvalOptions): Promise<EvalPart[]> {
  const parts: EvalPart[] = [];
  if (task === 'arithmetic') {
    if (o.data.length === 0) throw new UsageError('give --data FILE (e.g. data/arithmetic/test_3op.json)');
    for (const file of o.data) {
      const r = await evalArithmeticFile(dec, file, { samples: o.samples, decode: o.decode, seed: o.seed, limit: o.limit });
      parts.push({ label: label(file), summary: r.summary, items: r.items });
    }
  } else if (task === 'infill') {
    const file = o.data[0] ?? cfg?.task.sentences;
    if (!file) throw new UsageError('give --data SENTENCES_FILE (the run has no task.sentences)');
    const offset = o.offset ?? cfg?.task.limit;
    if (offset === undefined)
      throw new UsageError('the run trained on every infill item (no task.limit): give --offset N for the first held-out item');
    const seed = o.splitSeed ?? cfg?.seed ?? 0;
    const items = heldOutInfill(file, seed, offset, o.limit ?? 50);
    const r = await evalInfill(dec, items, { samples: o.samples, decode: o.decode, seed: o.seed, offset });
    parts.push({ label: 'infill', summary: r.summary, items: r.items });
  } else {
    if (o.data.length === 0) throw new UsageError('give --data FILE (e.g. data/subj/test.jsonl)');
    for (const file of o.data) {
      const r = await evalSubj(dec, readSubj(file, o.maxChars ?? 80, o.limit), { samples: o.samples, decode: o.decode, seed: o.seed });
      parts.push({ label: label(file), summary: r.summary, items: r.items });
    }
  }
  return parts;
}

/** Table columns of one evaluation (method × metric tables of compare). */
export function metricColumns(task: TaskName, parts: EvalPart[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const p of parts) {
    if (task === 'arithmetic') {
      const s = p.summary as ArithSummary;
      out[`${p.label} vote acc`] = s.majorityAccuracy;
      out[`${p.label} greedy acc`] = s.greedyAccuracy;
      out[`${p.label} sample acc`] = s.sampleAccuracy;
      out[`${p.label} distinct Z`] = s.distinctZ;
    } else if (task === 'infill') {
      const s = p.summary as InfillSummary;
      out['BLEU-4'] = s.bleu4;
      out['GLEU-4'] = s.gleu4;
      out['distinct-1'] = s.distinct1;
      out['distinct-2'] = s.distinct2;
      out['self-BLEU'] = s.selfBleu;
      out['log p(ZY|X)'] = s.meanLogPZY;
    } else {
      const s = p.summary as SubjSummary;
      out[`${p.label} acc`] = s.accuracy;
      out[`${p.label} sample acc`] = s.sampleAccuracy;
      out[`${p.label} % subjective`] = s.predictedSubjective;
    }
  }
  return out;
}

export function formatSummary(task: TaskName, p: EvalPart): string {
  const f = (v: number | null, d = 3) => (v === null ? '—' : v.toFixed(d));
  if (task === 'arithmetic') {
    const s = p.summary as ArithSummary;
    return `${p.label}: n ${s.n}, ${s.samples} × ${s.decode}: majority-vote accuracy ${f(s.majorityAccuracy)}, greedy ${f(s.greedyAccuracy)}, single sample ${f(s.sampleAccuracy)}, distinct Z ${f(s.distinctZ)} (${s.seconds.toFixed(1)} s)`;
  }
  if (task === 'infill') {
    const s = p.summary as InfillSummary;
    return `infill: n ${s.n} (held-out from item ${s.offset}), ${s.samples} × ${s.decode}: BLEU-4 ${f(s.bleu4)}, GLEU-4 ${f(s.gleu4)}, distinct-1 ${f(s.distinct1)}, distinct-2 ${f(s.distinct2)}, self-BLEU ${f(s.selfBleu)}, mean log p(Z Y | X) ${f(s.meanLogPZY, 2)} (${s.seconds.toFixed(1)} s)`;
  }
  const s = p.summary as SubjSummary;
  return `${p.label}: n ${s.n}, ${s.samples} × ${s.decode}: accuracy ${f(s.accuracy)}, single sample ${f(s.sampleAccuracy)}, predicted subjective ${f(s.predictedSubjective)} (${s.seconds.toFixed(1)} s)`;
}
