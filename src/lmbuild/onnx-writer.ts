/**
 * Writes a GPT (gpt.ts) as an ONNX graph (IR 8, opset 17: LayerNormalization is native)
 * with the KV-cache interface transformers.js expects of a `gpt2` decoder:
 *   inputs  input_ids [B,S] int64, attention_mask [B,P+S] int64,
 *           past_key_values.{i}.key|value [B,H,P,Dh] float32
 *   outputs logits [B,S,V], present.{i}.key|value [B,H,P+S,Dh], last_hidden_state [B,S,d]
 * The cache dims are named batch_size / past_sequence_length because transformers.js builds
 * the empty first-step cache by resolving exactly those symbols (batch_size → B, others → 0).
 * By default there is no position_ids input: positions are cumsum(attention_mask) − 1 (see
 * gpt.ts). `positions` writes the two other layouts real exports have: 'position_ids' (an
 * Optimum input, as LLaMA-family exports) and 'absolute' (an older GPT-2 export that counts
 * positions from the past length whatever the mask says — left padding shifts them).
 */
import { type GptConfig, type GptWeights, checkWeights, get } from '../lm/gpt.js';
import { DT, GraphBuilder, type ModelProto, encodeModel, makeModel, valueInfo } from '../lm/onnx-graph.js';

export interface WriteOptions {
  /** Also output the final hidden state (default true). false imitates a logits-only hub export. */
  hiddenOutput?: boolean;
  /** KV-cache inputs/outputs (default true). false imitates an export without a cache. */
  kvCache?: boolean;
  /** How the graph gets positions (default 'mask'): see the file comment. */
  positions?: PositionLayout;
}

export type PositionLayout = 'mask' | 'absolute' | 'position_ids';

export function buildGptOnnx(c: GptConfig, w: GptWeights, opts: WriteOptions = {}): ModelProto {
  checkWeights(c, w);
  const g = new GraphBuilder();
  const d = c.nEmbd;
  const H = c.nHead;
  const Dh = d / H;
  const W = (name: string) => g.weight(name, get(w, name).shape, get(w, name).data);

  // Lengths: S = new tokens, T = total (past + new), P = T − S.
  const S = g.op('Squeeze', [g.op('Shape', ['input_ids'], { start: 1, end: 2 }), g.constI64([0])]);
  const T = g.op('Squeeze', [g.op('Shape', ['attention_mask'], { start: 1, end: 2 }), g.constI64([0])]);
  const P = g.op('Sub', [T, S]);
  const one = g.constI64([1], []);
  const zero = g.constI64([0], []);

  const layout = opts.positions ?? 'mask';
  let pos: string;
  if (layout === 'position_ids') pos = 'position_ids';
  else if (layout === 'absolute')
    pos = g.op('Unsqueeze', [g.op('Range', [P, T, one]), g.constI64([0])]); // [1,S]: P..T−1
  else {
    // Positions of the new tokens: (cumsum(mask) − 1) clamped at 0, last S columns.
    const cum = g.op('CumSum', ['attention_mask', g.constI64([1], [])]);
    const posAll = g.op('Max', [g.op('Sub', [cum, one]), zero]);
    pos = g.op('Slice', [posAll, g.op('Unsqueeze', [P, g.constI64([0])]), g.op('Unsqueeze', [T, g.constI64([0])]), g.constI64([1])]);
  }

  // Key j is visible to query i (absolute position P+i) iff j ≤ P+i and mask[j] = 1.
  const qpos = g.op('Unsqueeze', [g.op('Range', [P, T, one]), g.constI64([1])]); // [S,1]
  const kpos = g.op('Range', [zero, T, one]); // [T]
  const causal = g.op('LessOrEqual', [kpos, qpos]); // [S,T]
  const keyOk = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], { to: DT.BOOL }), g.constI64([1, 2])]); // [B,1,1,T]
  const visible = g.op('And', [causal, keyOk]); // [B,1,S,T]
  const negBig = g.constF([-1e9], []);
  const scale = g.constF([1 / Math.sqrt(Dh)], []);
  const headShape = g.constI64([0, 0, H, Dh]);
  const mergeShape = g.constI64([0, 0, d]);
  const gk = g.constF([1.702], []);

  let x = g.op('Add', [g.op('Gather', [W('wte'), 'input_ids']), g.op('Gather', [W('wpe'), pos])]);
  const pastInputs: string[] = [];
  const presentOutputs: string[] = [];
  const split3 = g.constI64([d, d, d]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    const ln1 = g.op('LayerNormalization', [x, W(p + 'ln_1.weight'), W(p + 'ln_1.bias')], { axis: -1, epsilon: { float: c.lnEps } });
    const qkv = g.op('Add', [g.op('MatMul', [ln1, W(p + 'attn.c_attn.weight')]), W(p + 'attn.c_attn.bias')]);
    const [q0, k0, v0] = g.node('Split', [qkv, split3], { axis: 2 }, 3);
    const heads = (t: string) => g.op('Transpose', [g.op('Reshape', [t, headShape])], { perm: [0, 2, 1, 3] }); // [B,H,S,Dh]
    let kAll: string;
    let vAll: string;
    if (opts.kvCache !== false) {
      const pk = `past_key_values.${i}.key`;
      const pv = `past_key_values.${i}.value`;
      pastInputs.push(pk, pv);
      kAll = g.op('Concat', [pk, heads(k0)], { axis: 2 }, `present.${i}.key`);
      vAll = g.op('Concat', [pv, heads(v0)], { axis: 2 }, `present.${i}.value`);
      presentOutputs.push(kAll, vAll);
    } else {
      kAll = heads(k0);
      vAll = heads(v0);
    }
    const q = g.op('Mul', [heads(q0), scale]);
    const scores = g.op('MatMul', [q, g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]); // [B,H,S,T]
    const probs = g.op('Softmax', [g.op('Where', [visible, scores, negBig])], { axis: -1 });
    const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, vAll])], { perm: [0, 2, 1, 3] }), mergeShape]);
    const attnOut = g.op('Add', [g.op('MatMul', [ctx, W(p + 'attn.c_proj.weight')]), W(p + 'attn.c_proj.bias')]);
    x = g.op('Add', [x, attnOut]);
    const ln2 = g.op('LayerNormalization', [x, W(p + 'ln_2.weight'), W(p + 'ln_2.bias')], { axis: -1, epsilon: { float: c.lnEps } });
    const fc = g.op('Add', [g.op('MatMul', [ln2, W(p + 'mlp.c_fc.weight')]), W(p + 'mlp.c_fc.bias')]);
    const gelu = g.op('Mul', [fc, g.op('Sigmoid', [g.op('Mul', [fc, gk])])]);
    x = g.op('Add', [x, g.op('Add', [g.op('MatMul', [gelu, W(p + 'mlp.c_proj.weight')]), W(p + 'mlp.c_proj.bias')])]);
  }
  const hidden = g.op(
    'LayerNormalization',
    [x, W('ln_f.weight'), W('ln_f.bias')],
    { axis: -1, epsilon: { float: c.lnEps } },
    opts.hiddenOutput === false ? 'ln_f_output' : 'last_hidden_state',
  );
  g.op('MatMul', [hidden, W('lm_head.weight')], {}, 'logits');

  const cacheDims = ['batch_size', H, 'past_sequence_length', Dh];
  const presentDims = ['batch_size', H, 'total_sequence_length', Dh];
  const outputs = [valueInfo('logits', DT.FLOAT, ['batch_size', 'sequence_length', c.vocabSize])];
  for (const name of presentOutputs) outputs.push(valueInfo(name, DT.FLOAT, presentDims));
  if (opts.hiddenOutput !== false) outputs.push(valueInfo('last_hidden_state', DT.FLOAT, ['batch_size', 'sequence_length', d]));
  return makeModel({
    name: 'flowtune-gpt',
    node: g.nodes,
    initializer: g.initializers,
    input: [
      valueInfo('input_ids', DT.INT64, ['batch_size', 'sequence_length']),
      valueInfo('attention_mask', DT.INT64, ['batch_size', 'total_sequence_length']),
      ...(layout === 'position_ids' ? [valueInfo('position_ids', DT.INT64, ['batch_size', 'sequence_length'])] : []),
      ...pastInputs.map((n) => valueInfo(n, DT.FLOAT, cacheDims)),
    ],
    output: outputs,
  });
}

export function gptOnnxBytes(c: GptConfig, w: GptWeights, opts: WriteOptions = {}): Uint8Array {
  return encodeModel(buildGptOnnx(c, w, opts));
}

/**
 * Moves every weight initializer (float tensors of more than 64 elements) out of the graph
 * into one external-data file, as exports over 2 GB ship (`onnx/model.onnx` +
 * `onnx/model.onnx_data`): each tensor keeps its name and gets location / offset / length
 * entries relative to the graph file's folder. Offsets are 64-byte aligned.
 */
export function splitExternalData(m: ModelProto, location: string): { model: ModelProto; data: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of m.graph!.initializer ?? []) {
    const n = (t.dims ?? []).reduce((a: number, b) => a * Number(b), 1);
    if (t.dataType !== DT.FLOAT || n <= 64 || !t.rawData) continue;
    const pad = (64 - (offset % 64)) % 64;
    if (pad) chunks.push(new Uint8Array(pad));
    offset += pad;
    const raw = t.rawData;
    chunks.push(raw);
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.byteLength) },
    ];
    t.dataLocation = 1; // TensorProto.DataLocation.EXTERNAL
    t.rawData = new Uint8Array(0);
    offset += raw.byteLength;
  }
  const data = new Uint8Array(offset);
  let o = 0;
  for (const c of chunks) data.set(c, o), (o += c.byteLength);
  return { model: m, data };
}
