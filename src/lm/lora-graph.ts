/**
 * Low-rank branches in an ONNX graph, added once when the session opens, so sampling with the
 * current adapter runs at KV-cache speed without re-exporting per training step: every adapted
 *   y = MatMul(x, W)            becomes      y = MatMul(x, W) + MatMul(MatMul(x, A)·s, B)
 * with s = alpha/rank a graph constant and A [in, r], B [r, out] graph inputs, fed at every
 * forward from the trainer's current values (loraFeeds; LmSession.setExtraFeeds). The scale
 * multiplies the rank-r intermediate, the cheapest place for it.
 */
import * as ort from 'onnxruntime-node';
import { UsageError } from '../core/errors.js';
import { DT, type ModelProto, type NodeProto, floatTensor, valueInfo } from './onnx-graph.js';
import { type LoraModule, loraInputNames } from './lora-spec.js';

/** Finds the MatMul whose weight input is the initializer `<name>.weight` (exactly or as a dotted suffix). */
function findMatMul(nodes: NodeProto[], inits: Set<string>, m: LoraModule): number {
  const suffix = `${m.name}.weight`;
  const isW = (n: string) => inits.has(n) && (n === suffix || n.endsWith('.' + suffix));
  const hits = nodes.map((n, i) => (n.opType === 'MatMul' && isW(n.input?.[1] ?? '') ? i : -1)).filter((i) => i >= 0);
  if (hits.length !== 1)
    throw new UsageError(
      `LoRA: found ${hits.length} MatMul nodes using ${suffix} in the ONNX graph (expected 1; fp16 or quantized exports, whose weights reach the MatMul through Cast or DequantizeLinear, are not supported)`,
    );
  return hits[0];
}

export function addLoraBranches(model: ModelProto, modules: LoraModule[], scale: number, rank: number): void {
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name!));
  const scaleName = 'lora.scale';
  g.initializer!.push(floatTensor(scaleName, [], Float32Array.of(scale)));
  for (const m of modules) {
    const nodes = g.node!;
    const i = findMatMul(nodes, inits, m);
    const mm = nodes[i];
    const x = mm.input![0];
    const y = mm.output![0];
    const base = `${y}.lora_base`;
    const { a, b } = loraInputNames(m);
    const u = `lora.${m.name}.u`;
    const us = `lora.${m.name}.us`;
    const v = `lora.${m.name}.v`;
    mm.output = [base];
    const extra: NodeProto[] = [
      { opType: 'MatMul', input: [x, a], output: [u], name: `${u}_mm` },
      { opType: 'Mul', input: [u, scaleName], output: [us], name: `${us}_mul` },
      { opType: 'MatMul', input: [us, b], output: [v], name: `${v}_mm` },
      { opType: 'Add', input: [base, v], output: [y], name: `lora.${m.name}.add` },
    ];
    nodes.splice(i + 1, 0, ...extra);
    g.input!.push(valueInfo(a, DT.FLOAT, [m.inDim, rank]), valueInfo(b, DT.FLOAT, [rank, m.outDim]));
  }
}

/** Low-rank factors of one module, row-major: A [in × r], B [r × out]. */
export interface LoraFactors {
  a: Float32Array;
  b: Float32Array;
}

/** ORT feeds for the graph inputs addLoraBranches created. */
export function loraFeeds(modules: LoraModule[], rank: number, factors: Map<string, LoraFactors>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of modules) {
    const f = factors.get(m.name);
    if (!f) throw new Error(`LoRA feeds: no factors for ${m.name}`);
    const { a, b } = loraInputNames(m);
    feeds[a] = new ort.Tensor('float32', f.a, [m.inDim, rank]);
    feeds[b] = new ort.Tensor('float32', f.b, [rank, m.outDim]);
  }
  return feeds;
}
