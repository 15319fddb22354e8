/**
 * Graph surgery for hub exports that output only logits: the policy head needs the final
 * hidden state, which is the data input of the last LM-head MatMul (or Gemm) that produces
 * `logits`. We add that tensor as a graph output named `last_hidden_state` (via an Identity
 * node, so the original tensor name is untouched).
 */
import { UsageError } from '../core/errors.js';
import { DT, type ModelProto, type NodeProto, valueInfo } from './onnx-graph.js';

/** Finds the tensor that feeds the final projection to `logits`. */
export function findLmHeadInput(model: ModelProto, logitsName = 'logits'): { tensor: string; node: NodeProto } {
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const inits = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  // Walk back from logits through shape-only / bias ops until the MatMul/Gemm.
  let cur = producer.get(logitsName);
  const passThrough = new Set(['Add', 'Reshape', 'Identity', 'Cast', 'Squeeze', 'Unsqueeze']);
  for (let hops = 0; cur && hops < 8; hops++) {
    if (cur.opType === 'MatMul' || cur.opType === 'Gemm') {
      const data = (cur.input ?? []).find((i) => !inits.has(i) && !isWeightPath(i, producer, inits));
      if (!data) break;
      return { tensor: data, node: cur };
    }
    if (!passThrough.has(cur.opType ?? '')) break;
    const next = (cur.input ?? []).find((i) => producer.has(i) && !inits.has(i));
    cur = next ? producer.get(next) : undefined;
  }
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
