import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';

/**
 * The top-k / top-p path of the sampler against the distribution written out from the
 * definitions: p(v) ∝ exp(logit_v / T) over the k largest (top-k), then over the smallest
 * prefix of the sorted distribution whose mass reaches p (nucleus). Checked two ways: the
 * returned log-probability of every draw equals the exact truncated log-probability, and
 * the counts of 6000 draws (fixed seed) pass a χ² goodness-of-fit test at the 0.1% level.
 */

/** The exact truncated distribution, from sorted tempered probabilities (no sampler code). */
function truncated(logits: Float32Array, off: number, V: number, T: number, topK?: number, topP?: number): Float64Array {
  const w = Array.from({ length: V }, (_, v) => ({ v, l: logits[off + v] / T }));
  w.sort((a, b) => b.l - a.l);
  let keep = topK ? w.slice(0, topK) : w;
  const norm = (xs: typeof w) => {
    const m = xs[0].l;
    const z = xs.reduce((s, x) => s + Math.exp(x.l - m), 0);
    return xs.map((x) => ({ v: x.v, p: Math.exp(x.l - m) / z }));
  };
  let probs = norm(keep);
  if (topP) {
    let c = 0,
      n = 0;
    while (c < topP) c += probs[n++].p; // smallest prefix with mass ≥ p
    keep = keep.slice(0, n);
    probs = norm(keep);
  }
  const out = new Float64Array(V);
  for (const { v, p } of probs) out[v] = p;
  return out;
}

/** χ² critical value at the 0.1% level (Wilson–Hilferty). */
const chi2Crit = (df: number) => df * (1 - 2 / (9 * df) + 3.0902 * Math.sqrt(2 / (9 * df))) ** 3;

test('top-k and top-p sampling draw from the exact truncated, renormalized distribution', async () => {
  const m = writeTempModel(31, {}, {}, 2);
  try {
    const s = await LmSession.open(m.dir);
    const V = m.config.vocabSize;
    const prompt = [5, 17, 22];
    const N = 6000;
    const base = await s.forward({ batch: 1, inputIds: prompt, attentionMask: [1, 1, 1] });
    const last = (prompt.length - 1) * V;
    for (const o of [
      { topK: 6, temperature: 0.7 },
      { topP: 0.5, temperature: 1 },
      { topK: 10, topP: 0.8, temperature: 1.3 },
    ]) {
      const want = truncated(base.logits, last, V, o.temperature, o.topK, o.topP);
      const support = [...want.keys()].filter((v) => want[v] > 0);
      assert.ok(
        support.length >= 3 && support.length < V / 2,
        `${JSON.stringify(o)}: a support of ${support.length} tokens tests the truncation`,
      );
      const r = await sample(
        s,
        Array.from({ length: N }, () => prompt),
        { maxNewTokens: 1, keepHidden: false, rng: new Rng(7), ...o },
      );
      const counts = new Float64Array(V);
      for (let b = 0; b < N; b++) {
        const t = r.tokens[b];
        assert.ok(want[t] > 0, `${JSON.stringify(o)}: token ${t} is outside the top-k / top-p set`);
        assert.ok(
          Math.abs(r.logProbs[b] - Math.log(want[t])) < 1e-4,
          `${JSON.stringify(o)}: log-prob of token ${t}: ${r.logProbs[b]} vs exact ${Math.log(want[t])}`,
        );
        counts[t]++;
      }
      const chi2 = support.reduce((acc, v) => acc + (counts[v] - N * want[v]) ** 2 / (N * want[v]), 0);
      const crit = chi2Crit(support.length - 1);
      assert.ok(
        chi2 < crit,
        `${JSON.stringify(o)}: χ² ${chi2.toFixed(2)} ≥ ${crit.toFixed(2)} (df ${support.length - 1}) — sampled frequencies differ from the truncated distribution`,
      );
    }
    await s.release();
  } finally {
    m.cleanup();
  }
});
