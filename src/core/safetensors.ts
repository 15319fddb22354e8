/**
 * Minimal safetensors reader/writer (float32 only): 8-byte little-endian header length, a
 * JSON header {name: {dtype, shape, data_offsets}, __metadata__: {...}}, then the raw data.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Map<string, NamedArray>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  const names = [...tensors.keys()].sort();
  for (const n of names) {
    const t = tensors.get(n)!;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`safetensors: ${n} has ${t.data.length} values for shape ${t.shape}`);
    header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * size] };
    off += 4 * size;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' '; // keep the data 8-byte aligned
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const n of names) {
    const d = tensors.get(n)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  return out;
}

export function decodeSafetensors(
  bytes: Uint8Array,
  file = 'safetensors',
): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new UsageError(`${file}: too short to be safetensors`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) throw new UsageError(`${file}: header length ${n} exceeds the file`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    throw new UsageError(`${file}: corrupt safetensors header`);
  }
  const base = 8 + n;
  const tensors = new Map<string, NamedArray>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new UsageError(`${file}: ${name} has dtype ${info.dtype}; only F32 is supported`);
    const [a, b] = info.data_offsets as [number, number];
    if (base + b > bytes.length || b - a !== 4 * info.shape.reduce((x: number, y: number) => x * y, 1))
      throw new UsageError(`${file}: ${name} data out of range (truncated file?)`);
    const copy = new Uint8Array(bytes.subarray(base + a, base + b)); // a real copy (Buffer.slice is a view)
    tensors.set(name, { shape: info.shape, data: new Float32Array(copy.buffer, 0, (b - a) / 4) });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

export function saveSafetensors(file: string, tensors: Map<string, NamedArray>, metadata: Record<string, string> = {}): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeSafetensors(tensors, metadata));
  renameSync(tmp, file);
}

export function loadSafetensors(file: string): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new UsageError(`${file}: cannot read`);
  }
  return decodeSafetensors(bytes, file);
}
