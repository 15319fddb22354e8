/**
 * Text metrics for generated spans and rationales (docs/design.md §1, §6): BLEU-4 with
 * smoothing, Google's sentence GLEU-4, distinct-n and self-BLEU.
 *
 * Tokens are whitespace-separated words, case-sensitive, punctuation attached to its word
 * (`words`). Pass pre-tokenized arrays to use another tokenization.
 */

export function words(s: string): string[] {
  return s
    .trim()
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

/** Counts of the n-grams of one order (keys joined with U+0001, which never occurs in text). */
export function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join('\u0001');
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

const toks = (s: string | readonly string[]) => (typeof s === 'string' ? words(s) : s);

/**
 * Sentence BLEU-4 (Papineni et al. 2002) with uniform weights, against one or more
 * references, smoothed by Chen & Cherry (2014) method 1 — the definition of NLTK's
 * `sentence_bleu(..., smoothing_function=SmoothingFunction().method1)`:
 * - clipped precision p_n = Σ_g min(c_hyp(g), max_ref c_ref(g)) / max(1, Σ_g c_hyp(g));
 * - a p_n whose numerator is 0 becomes ε / max(1, Σ c_hyp) with ε = 0.1 (so an order the
 *   hypothesis is too short to have counts as 0.1);
 * - no unigram match at all (or an empty hypothesis) gives 0;
 * - brevity penalty BP = 1 if c > r else exp(1 − r/c), r = the reference length closest to
 *   the hypothesis length c (the shorter one on a tie);
 * - BLEU = BP · exp(Σ_{n=1..4} ¼ log p_n).
 */
export function bleu(hypothesis: string | readonly string[], references: (string | readonly string[])[], maxN = 4, epsilon = 0.1): number {
  const hyp = toks(hypothesis);
  const refs = references.map(toks);
  if (refs.length === 0) throw new Error('bleu: at least one reference is needed');
  if (hyp.length === 0) return 0;
  let logSum = 0;
  for (let n = 1; n <= maxN; n++) {
    const hc = ngramCounts(hyp, n);
    const maxRef = new Map<string, number>();
    for (const r of refs) for (const [g, c] of ngramCounts(r, n)) maxRef.set(g, Math.max(maxRef.get(g) ?? 0, c));
    let match = 0,
      total = 0;
    for (const [g, c] of hc) {
      match += Math.min(c, maxRef.get(g) ?? 0);
      total += c;
    }
    const den = Math.max(1, total);
    if (match === 0) {
      if (n === 1) return 0;
      logSum += Math.log(epsilon / den) / maxN;
    } else logSum += Math.log(match / den) / maxN;
  }
  const c = hyp.length;
  let r = refs[0].length;
  for (const ref of refs) {
    const d = Math.abs(ref.length - c),
      best = Math.abs(r - c);
    if (d < best || (d === best && ref.length < r)) r = ref.length;
  }
  const bp = c > r ? 1 : Math.exp(1 - r / c);
  return bp * Math.exp(logSum);
}

/**
 * Google's sentence GLEU (Wu et al. 2016): with all 1..maxN-grams of hypothesis and
 * reference pooled, precision = matches / hypothesis n-grams, recall = matches / reference
 * n-grams (matches clipped per n-gram), GLEU = min(precision, recall). 0 when either side has
 * no n-grams. Same as NLTK's `sentence_gleu` for one reference.
 */
export function gleu(hypothesis: string | readonly string[], reference: string | readonly string[], maxN = 4): number {
  const hyp = toks(hypothesis),
    ref = toks(reference);
  let match = 0,
    hypTotal = 0,
    refTotal = 0;
  for (let n = 1; n <= maxN; n++) {
    const hc = ngramCounts(hyp, n),
      rc = ngramCounts(ref, n);
    for (const [g, c] of hc) {
      hypTotal += c;
      match += Math.min(c, rc.get(g) ?? 0);
    }
    for (const c of rc.values()) refTotal += c;
  }
  if (hypTotal === 0 || refTotal === 0) return 0;
  return Math.min(match / hypTotal, match / refTotal);
}

/**
 * distinct-n (Li et al. 2016): unique n-grams / all n-grams over a set of texts (each text's
 * n-grams taken within the text). 0 when the texts hold no n-gram of that order.
 */
export function distinctN(texts: (string | readonly string[])[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const t of texts) {
    for (const [g, c] of ngramCounts(toks(t), n)) {
      seen.add(g);
      total += c;
    }
  }
  return total === 0 ? 0 : seen.size / total;
}

/**
 * Self-BLEU (Zhu et al. 2018): the mean over samples of BLEU-4 of the sample against all the
 * other samples as references. High = the samples repeat each other. null for fewer than 2
 * samples.
 */
export function selfBleu(texts: (string | readonly string[])[]): number | null {
  if (texts.length < 2) return null;
  const t = texts.map(toks);
  let s = 0;
  for (let i = 0; i < t.length; i++)
    s += bleu(
      t[i],
      t.filter((_, j) => j !== i),
    );
  return s / t.length;
}
