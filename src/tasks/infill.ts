/**
 * Infilling evaluation (docs/design.md §6). Items come from the same seeded split as training
 * (`infillSplits(sentences, seed)` of src/finetune/examples.ts: a middle span of 1–3 words is
 * Z, the words before it X, after it Y). A run trains on items [0, task.limit); the held-out
 * items are [offset, offset + n) with offset = task.limit by default, so no evaluated
 * sentence was trained on. For each item K spans Z are decoded and scored:
 * - BLEU-4 (method 1 smoothing) and GLEU-4 of each span against the removed span, averaged;
 * - distinct-1/2 over the item's K spans and self-BLEU among them, averaged over items;
 * - mean log p_LM(Z Y | X) under the frozen LM (= log p_LM(X Z Y) − log p_LM(X); log p(X)
 *   is the same for every method, so differences between methods are the same).
 */
import { encodeX } from '../lm/tokenizer.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { infillSplits, readSentences } from '../finetune/examples.js';
import { scoreRows } from '../finetune/score.js';
import { bleu, distinctN, gleu, selfBleu } from '../metrics/text.js';
import { decodeZ, describeDecode, type Decoder, type DecodeSpec } from './decode.js';

export interface InfillItem {
  x: string;
  z: string;
  y: string;
}

export function heldOutInfill(sentencesFile: string, seed: number, offset: number, n: number): InfillItem[] {
  const all = infillSplits(readSentences(sentencesFile), seed);
  const items = all.slice(offset, offset + n);
  if (items.length === 0) throw new UsageError(`${sentencesFile}: no infill items at offset ${offset} (${all.length} in all)`);
  return items;
}

export interface InfillItemResult {
  index: number;
  x: string;
  reference: string;
  y: string;
  samples: { z: string; bleu: number; gleu: number; logPZY: number }[];
  distinct1: number;
  distinct2: number;
  selfBleu: number | null;
}

export interface InfillSummary {
  n: number;
  samples: number;
  decode: string;
  offset: number;
  bleu4: number;
  gleu4: number;
  distinct1: number;
  distinct2: number;
  selfBleu: number | null;
  meanLogPZY: number;
  seconds: number;
}

export async function evalInfill(
  dec: Decoder,
  items: InfillItem[],
  o: { samples: number; decode: DecodeSpec; seed: number; offset: number },
): Promise<{ summary: InfillSummary; items: InfillItemResult[] }> {
  const t0 = performance.now();
  const { session, tok } = dec;
  const xs = items.map((it) => encodeX(tok, it.x));
  const ys = items.map((it) => tok.encode(it.y));
  items.forEach((_, i) => {
    const need = xs[i].length + dec.constraints.maxLength + ys[i].length + 1;
    if (need > session.facts.nCtx)
      throw new UsageError(
        `infill item ${o.offset + i} needs ${need} tokens, more than the model's context window of ${session.facts.nCtx}`,
      );
  });
  const zs = await decodeZ(dec, xs, o.samples, o.decode, new Rng(o.seed));
  const flatZ = zs.flat();
  const rows = await scoreRows(
    dec.baseSession ?? session,
    flatZ.map((_, r) => xs[Math.floor(r / o.samples)]),
    flatZ,
    flatZ.map((_, r) => ys[Math.floor(r / o.samples)]),
    dec.constraints,
    { prior: 'lm', likelihoodWeight: 1, temperature: 1 },
    { prefix: false },
  );
  const results: InfillItemResult[] = items.map((it, i) => {
    const texts = zs[i].map((z) => tok.decode(z.tokens, true));
    return {
      index: o.offset + i,
      x: it.x,
      reference: it.z,
      y: it.y,
      samples: texts.map((t, j) => {
        const r = rows[i * o.samples + j];
        return { z: t, bleu: bleu(t, [it.z]), gleu: gleu(t, it.z), logPZY: r.logPrior + r.logLik };
      }),
      distinct1: distinctN(texts, 1),
      distinct2: distinctN(texts, 2),
      selfBleu: selfBleu(texts),
    };
  });
  const mean = (f: (r: InfillItemResult) => number) => results.reduce((s, r) => s + f(r), 0) / results.length;
  const meanSamples = (f: (s: InfillItemResult['samples'][number]) => number) =>
    mean((r) => r.samples.reduce((s, x) => s + f(x), 0) / r.samples.length);
  const sb = results.filter((r) => r.selfBleu !== null);
  return {
    summary: {
      n: results.length,
      samples: o.samples,
      decode: describeDecode(o.decode),
      offset: o.offset,
      bleu4: meanSamples((s) => s.bleu),
      gleu4: meanSamples((s) => s.gleu),
      distinct1: mean((r) => r.distinct1),
      distinct2: mean((r) => r.distinct2),
      selfBleu: sb.length ? sb.reduce((s, r) => s + r.selfBleu!, 0) / sb.length : null,
      meanLogPZY: meanSamples((s) => s.logPZY),
      seconds: (performance.now() - t0) / 1000,
    },
    items: results,
  };
}
