/**
 * Held-out bits per character of a model folder, comparable across tokenizers: the build's
 * seeded held-out items (assembleCorpus + heldOutSplit, exactly as `build-tiny` made them) are
 * scored through the exported ONNX graph (flowtune's session) with the folder's own tokenizer
 * (transformers.js), as in training: each item at position 0, its first token given, every
 * later token and the EOS predicted. bits/char = total nats / characters / ln 2.
 */
import { UsageError } from '../core/errors.js';
import { LmSession } from '../lm/session.js';
import { scoreBatch } from '../lm/scorer.js';
import { loadHfTokenizer } from '../lm/tokenizer.js';
import { assembleCorpus } from './build.js';
import { heldOutSplit } from './train-tiny.js';

export interface HeldOutScore {
  items: number;
  /** characters of the held-out items */
  chars: number;
  /** characters after each item's first token (the text the model actually predicts) */
  predictedChars: number;
  /** predicted tokens (EOS included) */
  tokens: number;
  nats: number;
  bitsPerChar: number;
  bitsPerPredictedChar: number;
  perplexityPerToken: number;
}

export interface HeldOutOptions {
  corpus: string[];
  seed: number;
  valItems: number;
  /** corpus lines of this many characters or more were dropped at build time */
  maxChars: number;
  batch?: number;
}

export async function heldOutScore(dir: string, o: HeldOutOptions): Promise<HeldOutScore> {
  const { items } = assembleCorpus(o.corpus, o.seed, [], o.maxChars);
  if (items.length <= o.valItems) throw new UsageError(`corpus has ${items.length} items; need more than --val ${o.valItems}`);
  const val = heldOutSplit(items.length, o.seed)
    .order.slice(0, o.valItems)
    .map((i) => items[i]);
  const s = await LmSession.open(dir, { needHidden: false });
  try {
    const eos = s.facts.eosTokenId;
    const tok = await loadHfTokenizer(dir, eos, s.vocabSize, { bos: false });
    let nats = 0;
    let tokens = 0;
    let chars = 0;
    let predictedChars = 0;
    const B = o.batch ?? 16;
    for (let i = 0; i < val.length; i += B) {
      const texts = val.slice(i, i + B);
      const ids = texts.map((t) => tok.encode(t));
      for (const [k, r] of ids.entries())
        if (r.length + 1 > s.facts.nCtx)
          throw new UsageError(
            `held-out item of ${r.length} tokens (+ EOS) exceeds the context of ${s.facts.nCtx}: "${texts[k].slice(0, 40)}…"`,
          );
      const res = await scoreBatch(
        s,
        ids.map((r) => r.slice(0, 1)),
        ids.map((r) => [...r.slice(1), eos]),
      );
      for (let b = 0; b < texts.length; b++) {
        nats -= res.total[b];
        tokens += ids[b].length;
        chars += texts[b].length;
        predictedChars += texts[b].length - tok.decode(ids[b].slice(0, 1)).length;
      }
    }
    return {
      items: val.length,
      chars,
      predictedChars,
      tokens,
      nats,
      bitsPerChar: nats / chars / Math.LN2,
      bitsPerPredictedChar: nats / predictedChars / Math.LN2,
      perplexityPerToken: Math.exp(nats / tokens),
    };
  } finally {
    await s.release();
  }
}
