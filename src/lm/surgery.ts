/**
 * Graph surgery for hub exports that output only logits: the policy head needs the final
 * hidden state, which is the data input of the last LM-head MatMul (or Gemm) that produces
 * `logits`. We add that tensor as a graph output named `last_hidden_state` (via an Identity
 * node, so the original tensor name is untouched).
 */
import { UsageError } from '../core/errors.js';
import { DT, type ModelProto, type NodeProto, valueInfo } from './onnx-graph.js';

/**
 * Finds the tensor that feeds the final projection to `logits`: the data input of a MatMul /
 * Gemm, of a 4-bit MatMulNBits (weights packed in an initializer), or — for onnxruntime's
 * dynamic int8 quantization (model_quantized.onnx) — the input of the DynamicQuantizeLinear
 * that feeds a MatMulInteger, found behind its Cast and scale Mul.
 */
export function findLmHeadInput(model: ModelProto, logitsName = 'logits'): { tensor: string; node: NodeProto } {
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const inits = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  const passThrough = new Set(['Add', 'Mul', 'Reshape', 'Identity', 'Cast', 'Squeeze', 'Unsqueeze']);
  // Depth-first back from logits through shape-only / bias / scale ops (at most 8 hops).
  const visit = (name: string, hops: number): { tensor: string; node: NodeProto } | null => {
    const cur = producer.get(name);
    if (!cur || hops > 8) return null;
    const op = cur.opType ?? '';
    if (op === 'MatMul' || op === 'Gemm' || op === 'MatMulNBits') {
      const data = (cur.input ?? []).find((i) => !inits.has(i) && !isWeightPath(i, producer, inits));
      return data ? { tensor: data, node: cur } : null;
    }
    if (op === 'MatMulInteger') {
      const q = producer.get(cur.input![0]);
      return q?.opType === 'DynamicQuantizeLinear' ? { tensor: q.input![0], node: cur } : null;
    }
    if (!passThrough.has(op)) return null;
    for (const i of cur.input ?? []) {
      if (inits.has(i) || !producer.has(i)) continue;
      const found = visit(i, hops + 1);
      if (found) return found;
    }
    return null;
  };
  const found = visit(logitsName, 0);
  if (found) return found;
  throw new UsageError(`cannot find the LM-head MatMul that produces "${logitsName}" in this ONNX graph`);
}

/** True when the tensor is a weight reached only through Transpose/Cast of an initializer (tied embeddings). */
function isWeightPath(name: string, producer: Map<string, NodeProto>, inits: Set<string | null | undefined>): boolean {
  const p = producer.get(name);
  if (!p) return inits.has(name);
  if (p.opType === 'Transpose' || p.opType === 'Cast' || p.opType === 'Identity') return isWeightPath(p.input![0], producer, inits);
  return false;
}

/** Adds `last_hidden_state` [batch, seq, d] as an output. Returns the hidden size when known. */
export function exposeHiddenState(model: ModelProto, outputName = 'last_hidden_state'): void {
  const g = model.graph!;
  if ((g.output ?? []).some((o) => o.name === outputName)) return;
  const { tensor } = findLmHeadInput(model);
  g.node!.push({ opType: 'Identity', input: [tensor], output: [outputName], name: 'flowtune_expose_hidden' });
  g.output!.push(valueInfo(outputName, DT.FLOAT, ['batch_size', 'sequence_length', 'hidden_size']));
}
