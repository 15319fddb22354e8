/**
 * Writes a LLaMA-family model (src/lm/llama.ts) as an ONNX decoder with Optimum's I/O names,
 * the layout transformers.js runs for llama / qwen2:
 *   inputs  input_ids [B,S] int64, attention_mask [B,P+S] int64, position_ids [B,S] int64,
 *           past_key_values.{i}.key|value [B,H_kv,P,Dh] float32
 *           (+ use_cache_branch bool [1] in the merged variant)
 *   outputs logits [B,S,V], present.{i}.key|value [B,H_kv,P+S,Dh] (+ last_hidden_state [B,S,d])
 * Positions come only from position_ids (the caller derives them from the mask); the
 * attention mask hides padded keys; grouped-query attention reshapes the query heads into
 * [B, H_kv, rep·S, Dh] so each KV head serves its rep query heads without copying K/V.
 * The merged variant (decoder_model_merged.onnx) reads `use_cache_branch`: false means
 * "no cache yet", and the past inputs are then ignored (sliced to length 0).
 */
import { DT, GraphBuilder, type ModelProto, makeModel, valueInfo } from '../lm/onnx-graph.js';
import type { GptWeights } from '../lm/gpt.js';
import { type LlamaConfig, checkLlamaWeights, llamaModuleName, validateLlamaConfig } from '../lm/llama.js';

export interface LlamaWriteOptions {
  /** Also output the final hidden state (default true); false imitates an Optimum export. */
  hiddenOutput?: boolean;
  /** The merged-decoder variant with a use_cache_branch input (default false). */
  merged?: boolean;
  /**
   * An fp16 export (model_fp16.onnx): weights stored as float16, KV cache inputs/outputs,
   * logits and hidden state in float16; the arithmetic runs in float32 between Casts.
   */
  fp16?: boolean;
  /**
   * The LM head as onnxruntime's dynamic int8 quantization writes it (model_quantized.onnx):
   * DynamicQuantizeLinear(h) → MatMulInteger with uint8 weights → Cast → Mul by the scales.
   */
  int8Head?: boolean;
}

/** IEEE half from a float (round to nearest even), as raw bits. */
export function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1),
      halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function buildLlamaOnnx(c: LlamaConfig, w: GptWeights, opts: LlamaWriteOptions = {}): ModelProto {
  validateLlamaConfig(c);
  checkLlamaWeights(c, w);
  const g = new GraphBuilder();
  const d = c.nEmbd,
    H = c.nHead,
    Hkv = c.nKvHead,
    Dh = c.headDim,
    half = Dh / 2;
  const fp16 = opts.fp16 === true;
  const W = (name: string) => {
    const p = w.get(name)!;
    if (!fp16) return g.weight(name, p.shape, p.data);
    // stored as float16 under the HF name, read through a Cast (as fp16 exports are run in fp32 here)
    const bits = Uint16Array.from(p.data, floatToHalf);
    g.initializers.push({ name, dims: p.shape, dataType: DT.FLOAT16, rawData: new Uint8Array(bits.buffer) });
    return g.op('Cast', [name], { to: DT.FLOAT });
  };
  const F = fp16 ? DT.FLOAT16 : DT.FLOAT;

  const S = g.op('Squeeze', [g.op('Shape', ['input_ids'], { start: 1, end: 2 }), g.constI64([0])]);
  const T = g.op('Squeeze', [g.op('Shape', ['attention_mask'], { start: 1, end: 2 }), g.constI64([0])]);
  const P = g.op('Sub', [T, S]);
  const one = g.constI64([1], []);
  const zero = g.constI64([0], []);

  // Key j is visible to query i (column P+i) iff j ≤ P+i and mask[j] = 1 (as the GPT writer).
  const qpos = g.op('Unsqueeze', [g.op('Range', [P, T, one]), g.constI64([1])]);
  const kpos = g.op('Range', [zero, T, one]);
  const causal = g.op('LessOrEqual', [kpos, qpos]);
  const keyOk = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], { to: DT.BOOL }), g.constI64([1, 2])]);
  const visible = g.op('And', [causal, keyOk]); // [B,1,S,T]

  // Rotary tables from position_ids: angle = pos · θ^(−2j/Dh), duplicated over both halves.
  const invFreq = g.constF(Array.from({ length: half }, (_, j) => Math.pow(c.ropeTheta, (-2 * j) / Dh)));
  const posF = g.op('Unsqueeze', [g.op('Cast', ['position_ids'], { to: DT.FLOAT }), g.constI64([2])]); // [B,S,1]
  const freqs = g.op('Mul', [posF, invFreq]);
  const ang = g.op('Concat', [freqs, freqs], { axis: -1 }); // [B,S,Dh]
  const cos = g.op('Unsqueeze', [g.op('Cos', [ang]), g.constI64([1])]); // [B,1,S,Dh]
  const sin = g.op('Unsqueeze', [g.op('Sin', [ang]), g.constI64([1])]);
  const halves = g.constI64([half, half]);
  const rope = (x: string) => {
    const [x1, x2] = g.node('Split', [x, halves], { axis: 3 }, 2);
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: 3 });
    return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rot, sin])]);
  };
  const epsT = g.constF([c.rmsEps], []);
  const rmsNorm = (x: string, weight: string, out?: string) => {
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, epsT])])]), W(weight)], {}, out);
  };
  const lin = (x: string, layer: number, m: Parameters<typeof llamaModuleName>[1]) => {
    const y = g.op('MatMul', [x, W(llamaModuleName(layer, m))]);
    const hasBias = c.attentionBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj');
    return hasBias ? g.op('Add', [y, W(llamaModuleName(layer, m).replace(/weight$/, 'bias'))]) : y;
  };
  const toHeads = (t: string, n: number) => g.op('Transpose', [g.op('Reshape', [t, g.constI64([0, 0, n, Dh])])], { perm: [0, 2, 1, 3] });
  const negBig = g.constF([-1e9], []);
  const scale = g.constF([1 / Math.sqrt(Dh)], []);

  // Merged decoder: without the cache branch the past inputs are ignored (length 0).
  let keep: string | null = null;
  if (opts.merged) keep = g.op('Cast', ['use_cache_branch'], { to: DT.INT64 }); // [1]: 1 or 0

  let x = g.op('Gather', [W('model.embed_tokens.weight'), 'input_ids']);
  const pastInputs: string[] = [];
  const presentOutputs: string[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const n1 = rmsNorm(x, `model.layers.${i}.input_layernorm.weight`);
    const q = rope(toHeads(lin(n1, i, 'q_proj'), H)); // [B,H,S,Dh]
    const k = rope(toHeads(lin(n1, i, 'k_proj'), Hkv)); // [B,Hkv,S,Dh]
    const v = toHeads(lin(n1, i, 'v_proj'), Hkv);
    let pk = `past_key_values.${i}.key`;
    let pv = `past_key_values.${i}.value`;
    pastInputs.push(pk, pv);
    if (fp16) {
      pk = g.op('Cast', [pk], { to: DT.FLOAT });
      pv = g.op('Cast', [pv], { to: DT.FLOAT });
    }
    if (keep) {
      const len = g.op('Mul', [g.op('Shape', [pk], { start: 2, end: 3 }), keep]);
      pk = g.op('Slice', [pk, g.constI64([0]), len, g.constI64([2])]);
      pv = g.op('Slice', [pv, g.constI64([0]), len, g.constI64([2])]);
    }
    const kAll = g.op('Concat', [pk, k], { axis: 2 }, fp16 ? undefined : `present.${i}.key`);
    const vAll = g.op('Concat', [pv, v], { axis: 2 }, fp16 ? undefined : `present.${i}.value`);
    if (fp16) {
      g.op('Cast', [kAll], { to: DT.FLOAT16 }, `present.${i}.key`);
      g.op('Cast', [vAll], { to: DT.FLOAT16 }, `present.${i}.value`);
    }
    presentOutputs.push(`present.${i}.key`, `present.${i}.value`);
    // query head j = kv·rep + r: [B,H,S,Dh] → [B,Hkv,rep·S,Dh] shares each KV head with its rep queries
    const qg = g.op('Reshape', [g.op('Mul', [q, scale]), g.constI64([0, Hkv, -1, Dh])]);
    const scores = g.op('Reshape', [g.op('MatMul', [qg, g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]), g.constI64([0, H, -1, 0])]); // [B,H,S,T]
    const probs = g.op('Softmax', [g.op('Where', [visible, scores, negBig])], { axis: -1 });
    const ctxG = g.op('MatMul', [g.op('Reshape', [probs, g.constI64([0, Hkv, -1, 0])]), vAll]); // [B,Hkv,rep·S,Dh]
    const ctx = g.op('Reshape', [
      g.op('Transpose', [g.op('Reshape', [ctxG, g.constI64([0, H, -1, Dh])])], { perm: [0, 2, 1, 3] }),
      g.constI64([0, 0, H * Dh]),
    ]);
    x = g.op('Add', [x, g.op('MatMul', [ctx, W(llamaModuleName(i, 'o_proj'))])]);
    const n2 = rmsNorm(x, `model.layers.${i}.post_attention_layernorm.weight`);
    const gate = lin(n2, i, 'gate_proj');
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), lin(n2, i, 'up_proj')]);
    x = g.op('Add', [x, g.op('MatMul', [act, W(llamaModuleName(i, 'down_proj'))])]);
  }
  const hidden = rmsNorm(x, 'model.norm.weight', opts.hiddenOutput === false || fp16 ? 'norm_output' : 'last_hidden_state');
  if (fp16 && opts.hiddenOutput !== false) g.op('Cast', [hidden], { to: DT.FLOAT16 }, 'last_hidden_state');
  const embed = fp16
    ? g.nodes.find((n) => n.input?.[0] === 'model.embed_tokens.weight' && n.opType === 'Cast')!.output![0]
    : 'model.embed_tokens.weight';
  const head = opts.int8Head ? '' : c.tieWordEmbeddings ? g.op('Transpose', [embed], { perm: [1, 0] }) : W('lm_head.weight');
  if (opts.int8Head) {
    if (c.tieWordEmbeddings || fp16) throw new Error('int8Head: untied fp32 heads only');
    const p = w.get('lm_head.weight')!;
    let lo = 0,
      hi = 0;
    for (const v of p.data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    const sc = (hi - lo) / 255,
      zp = Math.round(-lo / sc);
    const q = Uint8Array.from(p.data, (v) => Math.max(0, Math.min(255, Math.round(v / sc) + zp)));
    g.initializers.push({ name: 'lm_head.weight_quantized', dims: p.shape, dataType: DT.UINT8, rawData: q });
    g.initializers.push({ name: 'lm_head.weight_zero_point', dims: [], dataType: DT.UINT8, rawData: Uint8Array.of(zp) });
    const wScale = g.constF([sc], []);
    const [hq, hScale, hZp] = g.node('DynamicQuantizeLinear', [hidden], {}, 3);
    const acc = g.op('MatMulInteger', [hq, 'lm_head.weight_quantized', hZp, 'lm_head.weight_zero_point']);
    g.op('Mul', [g.op('Cast', [acc], { to: DT.FLOAT }), g.op('Mul', [hScale, wScale])], {}, 'logits');
  } else if (fp16) g.op('Cast', [g.op('MatMul', [hidden, head])], { to: DT.FLOAT16 }, 'logits');
  else g.op('MatMul', [hidden, head], {}, 'logits');

  const outputs = [valueInfo('logits', F, ['batch_size', 'sequence_length', c.vocabSize])];
  for (const n of presentOutputs) outputs.push(valueInfo(n, F, ['batch_size', Hkv, 'total_sequence_length', Dh]));
  if (opts.hiddenOutput !== false) outputs.push(valueInfo('last_hidden_state', F, ['batch_size', 'sequence_length', d]));
  return makeModel({
    name: `flowtune-${c.modelType}`,
    node: g.nodes,
    initializer: g.initializers,
    input: [
      valueInfo('input_ids', DT.INT64, ['batch_size', 'sequence_length']),
      valueInfo('attention_mask', DT.INT64, ['batch_size', 'total_sequence_length']),
      valueInfo('position_ids', DT.INT64, ['batch_size', 'sequence_length']),
      ...pastInputs.map((n) => valueInfo(n, F, ['batch_size', Hkv, 'past_sequence_length', Dh])),
      ...(opts.merged ? [valueInfo('use_cache_branch', DT.BOOL, [1])] : []),
    ],
    output: outputs,
  });
}
