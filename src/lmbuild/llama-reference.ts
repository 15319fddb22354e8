/**
 * Plain-JS forward of a LLaMA-family model (src/lm/llama.ts) for one unpadded row, positions
 * 0..S−1: the independent reference the ONNX writer is checked against. Straight loops in
 * float64, written from the HF modeling code's definitions, sharing nothing with the writer.
 */
import type { GptWeights } from '../lm/gpt.js';
import { type LlamaConfig, llamaModuleName } from '../lm/llama.js';

export function llamaReferenceForward(c: LlamaConfig, w: GptWeights, ids: number[]): { logits: Float64Array; hidden: Float64Array } {
  const S = ids.length,
    d = c.nEmbd,
    H = c.nHead,
    Hkv = c.nKvHead,
    Dh = c.headDim,
    V = c.vocabSize;
  const W = (n: string) => {
    const p = w.get(n);
    if (!p) throw new Error(`missing ${n}`);
    return p.data;
  };
  // x·M for x [S×n], M [n×m] stored row-major
  const mm = (x: Float64Array, M: Float32Array, n: number, m: number, bias?: Float32Array): Float64Array => {
    const out = new Float64Array(S * m);
    for (let s = 0; s < S; s++)
      for (let j = 0; j < m; j++) {
        let acc = bias ? bias[j] : 0;
        for (let i = 0; i < n; i++) acc += x[s * n + i] * M[i * m + j];
        out[s * m + j] = acc;
      }
    return out;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    const out = new Float64Array(S * d);
    for (let s = 0; s < S; s++) {
      let ms = 0;
      for (let i = 0; i < d; i++) ms += x[s * d + i] ** 2 / d;
      const r = 1 / Math.sqrt(ms + c.rmsEps);
      for (let i = 0; i < d; i++) out[s * d + i] = x[s * d + i] * r * g[i];
    }
    return out;
  };
  // rotate-half rotary embedding, in place on [S × heads × Dh]
  const rope = (x: Float64Array, heads: number) => {
    const half = Dh / 2;
    for (let s = 0; s < S; s++)
      for (let h = 0; h < heads; h++) {
        const o = (s * heads + h) * Dh;
        for (let j = 0; j < half; j++) {
          const ang = s * Math.pow(c.ropeTheta, (-2 * j) / Dh);
          const cos = Math.cos(ang),
            sin = Math.sin(ang);
          const a = x[o + j],
            b = x[o + j + half];
          x[o + j] = a * cos - b * sin;
          x[o + j + half] = b * cos + a * sin;
        }
      }
  };
  const emb = W('model.embed_tokens.weight');
  let x = new Float64Array(S * d);
  for (let s = 0; s < S; s++) for (let i = 0; i < d; i++) x[s * d + i] = emb[ids[s] * d + i];
  const bias = (l: number, m: string) => (c.attentionBias ? W(llamaModuleName(l, m as any).replace(/weight$/, 'bias')) : undefined);
  for (let l = 0; l < c.nLayer; l++) {
    const n1 = rms(x, W(`model.layers.${l}.input_layernorm.weight`));
    const q = mm(n1, W(llamaModuleName(l, 'q_proj')), d, H * Dh, bias(l, 'q_proj'));
    const k = mm(n1, W(llamaModuleName(l, 'k_proj')), d, Hkv * Dh, bias(l, 'k_proj'));
    const v = mm(n1, W(llamaModuleName(l, 'v_proj')), d, Hkv * Dh, bias(l, 'v_proj'));
    rope(q, H);
    rope(k, Hkv);
    const ctx = new Float64Array(S * H * Dh);
    const rep = H / Hkv;
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      for (let s = 0; s < S; s++) {
        const sc = new Float64Array(s + 1);
        let m = -Infinity;
        for (let t = 0; t <= s; t++) {
          let dot = 0;
          for (let j = 0; j < Dh; j++) dot += q[(s * H + h) * Dh + j] * k[(t * Hkv + kvh) * Dh + j];
          sc[t] = dot / Math.sqrt(Dh);
          m = Math.max(m, sc[t]);
        }
        let z = 0;
        for (let t = 0; t <= s; t++) z += sc[t] = Math.exp(sc[t] - m);
        for (let t = 0; t <= s; t++) for (let j = 0; j < Dh; j++) ctx[(s * H + h) * Dh + j] += (sc[t] / z) * v[(t * Hkv + kvh) * Dh + j];
      }
    }
    const att = mm(ctx, W(llamaModuleName(l, 'o_proj')), H * Dh, d);
    for (let i = 0; i < x.length; i++) x[i] += att[i];
    const n2 = rms(x, W(`model.layers.${l}.post_attention_layernorm.weight`));
    const f = c.intermediateSize;
    const gate = mm(n2, W(llamaModuleName(l, 'gate_proj')), d, f);
    const up = mm(n2, W(llamaModuleName(l, 'up_proj')), d, f);
    for (let i = 0; i < gate.length; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
    const down = mm(gate, W(llamaModuleName(l, 'down_proj')), f, d);
    x = x.map((v2, i) => v2 + down[i]);
  }
  const hidden = rms(x, W('model.norm.weight'));
  let logits: Float64Array;
  if (c.tieWordEmbeddings) {
    logits = new Float64Array(S * V);
    for (let s = 0; s < S; s++)
      for (let t = 0; t < V; t++) {
        let acc = 0;
        for (let i = 0; i < d; i++) acc += hidden[s * d + i] * emb[t * d + i];
        logits[s * V + t] = acc;
      }
  } else logits = mm(hidden, W('lm_head.weight'), d, V);
  return { logits, hidden };
}
