/**
 * A GPT-2-style causal transformer held in memory as named Float32Arrays. This is the one
 * description of the architecture that the ONNX writer (onnx-writer.ts), the tfjs
 * reference forward / trainer (reference.ts, train-tiny.ts) and the safetensors files share.
 *
 * Block (pre-LayerNorm, as GPT-2):  x += Attn(LN1(x));  x += MLP(LN2(x));  h = LNf(x);
 * logits = h · lmHead. MLP = Linear(d,4d) → GELU → Linear(4d,d) with the sigmoid GELU
 * x·σ(1.702x): docs/design.md §3 measured tanh/erf at 5–8× the cost of a sigmoid in tfjs-wasm,
 * and since the exporter writes the same formula, ONNX and tfjs agree exactly.
 * Positions come from the attention mask (cumsum(mask) − 1), so left padding and masked-out
 * middle tokens (the prefix-reward trick in scorer.ts) leave the real tokens' positions as
 * if the padding were absent.
 */
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';

export interface GptConfig {
  vocabSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  nCtx: number;
  /** LayerNorm epsilon (GPT-2 uses 1e-5). */
  lnEps: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
}

export interface Param {
  shape: number[];
  data: Float32Array;
}

/** Parameters by name (GPT-2 / HF naming, weights stored as [in, out] for x·W). */
export type GptWeights = Map<string, Param>;

export function paramShapes(c: GptConfig): [string, number[]][] {
  const d = c.nEmbd;
  const out: [string, number[]][] = [
    ['wte', [c.vocabSize, d]],
    ['wpe', [c.nCtx, d]],
  ];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    out.push(
      [p + 'ln_1.weight', [d]],
      [p + 'ln_1.bias', [d]],
      [p + 'attn.c_attn.weight', [d, 3 * d]],
      [p + 'attn.c_attn.bias', [3 * d]],
      [p + 'attn.c_proj.weight', [d, d]],
      [p + 'attn.c_proj.bias', [d]],
      [p + 'ln_2.weight', [d]],
      [p + 'ln_2.bias', [d]],
      [p + 'mlp.c_fc.weight', [d, 4 * d]],
      [p + 'mlp.c_fc.bias', [4 * d]],
      [p + 'mlp.c_proj.weight', [4 * d, d]],
      [p + 'mlp.c_proj.bias', [d]],
    );
  }
  // Untied output matrix [d, V]: a plain (non-transposed) matMul for tfjs-wasm's fast path.
  out.push(['ln_f.weight', [d]], ['ln_f.bias', [d]], ['lm_head.weight', [d, c.vocabSize]]);
  return out;
}

export function validateConfig(c: GptConfig): void {
  for (const k of ['vocabSize', 'nLayer', 'nHead', 'nEmbd', 'nCtx'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new UsageError(`model config: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.nEmbd % c.nHead !== 0) throw new UsageError(`model config: nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}`);
}

/**
 * GPT-2 initialization: N(0, 0.02) for matrices, residual projections scaled by
 * 1/sqrt(2·nLayer), LayerNorm gain 1, biases 0. `scale` multiplies every random matrix
 * (tests use larger weights so that random models have peaked, order-sensitive outputs).
 */
export function initWeights(c: GptConfig, seed: number, scale = 1): GptWeights {
  validateConfig(c);
  const rng = new Rng(seed);
  const w: GptWeights = new Map();
  for (const [name, shape] of paramShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') data.fill(1);
    else if (shape.length === 2) {
      const std = 0.02 * scale * (name.endsWith('c_proj.weight') ? 1 / Math.sqrt(2 * c.nLayer) : 1);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    w.set(name, { shape, data });
  }
  return w;
}

/** Randomizes biases and LayerNorm parameters too (tests: every parameter must matter). */
export function perturbAll(w: GptWeights, seed: number, std: number): void {
  const rng = new Rng(seed);
  for (const p of w.values()) for (let i = 0; i < p.data.length; i++) p.data[i] += rng.normal() * std;
}

export function paramCount(w: GptWeights): number {
  let n = 0;
  for (const p of w.values()) n += p.data.length;
  return n;
}

export function checkWeights(c: GptConfig, w: GptWeights): void {
  for (const [name, shape] of paramShapes(c)) {
    const p = w.get(name);
    if (!p) throw new UsageError(`weights: missing parameter ${name}`);
    if (p.shape.join('x') !== shape.join('x'))
      throw new UsageError(`weights: ${name} has shape ${p.shape.join('x')}, expected ${shape.join('x')}`);
  }
}

export function get(w: GptWeights, name: string): Param {
  const p = w.get(name);
  if (!p) throw new Error(`missing parameter ${name}`);
  return p;
}
