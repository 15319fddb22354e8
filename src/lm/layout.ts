/**
 * Facts about an exported decoder graph that decide how it must be run: how it gets
 * positions, which external-data files hold its weights, and how an edited copy (graph
 * surgery) is handed to onnxruntime without copying those weights.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, linkSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { type ModelProto, encodeModel } from './onnx-graph.js';

/**
 * 'position_ids': the graph takes a position_ids input (Optimum's LLaMA / Qwen2 / newer GPT-2
 * exports); 'mask': the graph derives positions from attention_mask itself (a CumSum over it:
 * flowtune's own writer); 'absolute': neither — positions count from the past length, so a
 * padded or masked-out column shifts them (older GPT-2 exports).
 */
export type PositionHandling = 'position_ids' | 'mask' | 'absolute';

export function positionHandling(m: ModelProto): PositionHandling {
  const g = m.graph!;
  if ((g.input ?? []).some((i) => i.name === 'position_ids')) return 'position_ids';
  // A CumSum fed by attention_mask (directly or through a Cast) computes positions from it.
  const producer = new Map<string, { opType?: string | null; input?: string[] | null }>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const fromMask = (name: string, hops: number): boolean => {
    if (name === 'attention_mask') return true;
    const p = producer.get(name);
    if (!p || hops > 3 || !['Cast', 'Identity'].includes(p.opType ?? '')) return false;
    return fromMask(p.input![0], hops + 1);
  };
  for (const n of g.node ?? []) if (n.opType === 'CumSum' && fromMask(n.input![0], 0)) return 'mask';
  return 'absolute';
}

/** Absolute paths of the external-data files the graph's initializers name; a missing one is a UsageError naming it. */
export function externalDataFiles(m: ModelProto, graphFile: string): string[] {
  const files = new Set<string>();
  for (const t of m.graph!.initializer ?? []) {
    if (t.dataLocation !== 1) continue;
    const loc = (t.externalData ?? []).find((e) => e.key === 'location')?.value;
    if (!loc) throw new UsageError(`${graphFile}: initializer ${t.name} has external data without a location`);
    files.add(path.join(path.dirname(graphFile), loc));
  }
  for (const f of files) if (!existsSync(f)) throw new UsageError(`${graphFile}: its weights are in ${f}, which is missing`);
  return [...files].sort();
}

/** sha256 over the graph bytes then each external-data file (streamed: they can be gigabytes). */
export function hashModelFiles(graph: Uint8Array, extFiles: string[]): string {
  const h = createHash('sha256').update(graph);
  const buf = Buffer.alloc(1 << 22);
  for (const f of extFiles) {
    const fd = openSync(f, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  }
  return h.digest('hex');
}

/**
 * Writes an edited graph where onnxruntime will find the original external-data files under
 * the names the graph uses, without copying them: in a temporary folder with hard links to
 * them (onnxruntime refuses symbolic links that leave the graph's folder), or — when the
 * temporary folder is on another file system — as a hidden file next to the original graph.
 * The caller removes it (cleanup) once the session is created: onnxruntime has read it then.
 */
export function stageSurgeredModel(m: ModelProto, graphFile: string, extFiles: string[]): { file: string; cleanup: () => void } {
  const bytes = encodeModel(m);
  if (extFiles.length === 0) {
    const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-graph-'));
    const file = path.join(root, 'model.onnx');
    writeFileSync(file, bytes);
    return { file, cleanup: () => rmSync(root, { recursive: true, force: true }) };
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-graph-'));
  try {
    for (const f of extFiles) linkSync(f, path.join(root, path.relative(path.dirname(graphFile), f)));
    const file = path.join(root, 'model.onnx');
    writeFileSync(file, bytes);
    return { file, cleanup: () => rmSync(root, { recursive: true, force: true }) };
  } catch {
    rmSync(root, { recursive: true, force: true });
  }
  const file = path.join(path.dirname(graphFile), `.flowtune-${process.pid}-${Date.now()}.onnx`);
  try {
    writeFileSync(file, bytes);
  } catch (err) {
    throw new UsageError(
      `${graphFile}: cannot stage the graph with last_hidden_state next to its external data (${(err as Error).message.split('\n')[0]})`,
    );
  }
  return { file, cleanup: () => rmSync(file, { force: true }) };
}
