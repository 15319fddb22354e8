/**
 * FusedMlp: the fast path for small benchmark policies (docs/design.md §3 "Performance notes"). A
 * hand-written wasm SIMD kernel (asm/fused_mlp.ts → dist/wasm/fused_mlp.wasm) holds the
 * parameters, gradients and Adam moments in one flat buffer and the activations on a tape, so
 * the rollout's forward is reused by the loss's backward and Adam/Polyak are single SIMD loops.
 *
 * The forward goes in blocks of FWD_ROWS rows and, for each hidden/output layer, one column chunk
 * of W_l at a time from a chunked copy (refreshed after the parameters change), so the chunk is
 * read from L1 by every row of the block: ≈ 12% faster than streaming W_l from L2 row by row,
 * with every output summed in the same order (bitwise the same results).
 *
 * Inside wasm every layer's output width is padded to a multiple of 4 floats (padded columns
 * are zero and stay zero); getParams/setParams/getGrads convert to and from the shared flat
 * layout of mlp.ts, so vectors are interchangeable with TfjsMlp and ReferenceMlp.
 */
import { readFileSync } from 'node:fs';
import { Rng } from '../core/rng.js';
import { countParams, initParams, layerSizes, type MlpSpec, type SparseMlp } from './mlp.js';

/** Adam state in the shared flat layout (for checkpoints: resume reaches the same numbers). */
export interface AdamState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

interface Kernel {
  memory: WebAssembly.Memory;
  heapBase(): number;
  setup(
    nLayers: number,
    table: number,
    nnz: number,
    stride: number,
    gDelta: number,
    list: number,
    lt: number,
    ltCnt: number,
    zeros: number,
    outS: number,
    rowS: number,
    blockRows: number,
  ): void;
  forward(n: number, idx: number, out: number, outDim: number, tape: number, record: number): void;
  backward(n: number, tape: number, dOut: number, outDim: number): void;
  adam(P: number, M: number, V: number, n: number, b1: number, b2: number, eps: number, stepSize: number, invSqrtBc2: number): void;
  polyak(dst: number, src: number, n: number, tau: number): void;
  transpose(): void;
  setupForward(lists: number, cnt: number, rows: number, outRows: number, listCap: number, rowsPerBlock: number): void;
  blockW(): void;
}

let compiled: WebAssembly.Module | undefined;

function kernelModule(): WebAssembly.Module {
  if (!compiled) {
    // dist/src/nn/fused-mlp.js → dist/wasm/fused_mlp.wasm
    const url = new URL('../../wasm/fused_mlp.wasm', import.meta.url);
    let bytes: Buffer;
    try {
      bytes = readFileSync(url);
    } catch (err) {
      throw new Error(`fused MLP kernel not found at ${url.pathname} (run \`npm run build\`): ${(err as Error).message}`);
    }
    compiled = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  }
  return compiled;
}

const PAGE = 65536;
/** Rows copied into wasm per kernel call (inputs/outputs); larger batches are chunked. */
const IO_ROWS = 1024;
const INITIAL_TAPE_ROWS = 512;
/** Rows per backward block (the weight gradients are accumulated per block). */
const BLOCK_ROWS = 64;
const TBL = 10; // i32 fields per layer in the kernel's layer table
/** Rows per forward block: each column chunk of W_l (fanIn × 24 floats) is reused by this many rows while it sits in L1. */
const FWD_ROWS = 32;
const CHUNK_FLOATS = 24;

const ceil4 = (x: number): number => (x + 3) & ~3;
const align16 = (x: number): number => (x + 15) & ~15;

export class FusedMlp implements SparseMlp {
  readonly spec: MlpSpec;
  readonly numParams: number;
  private readonly k: Kernel;
  private readonly sizes: number[];
  private readonly outP: number[]; // padded output width per layer
  private readonly wOff: number[]; // float offset of W_l inside the padded parameter block
  private readonly nP: number; // padded parameter count (multiple of 4)
  private readonly P: number; // byte addresses
  private readonly G: number;
  private readonly M: number;
  private readonly V: number;
  private readonly S: number; // staging area for polyakFrom / setParams sources
  private readonly ioIdx: number;
  private readonly ioOut: number;
  private readonly tapeBase: number;
  private readonly rowStride: number;
  private tapeCap: number;
  private rows = 0;
  private step = 0;
  private f32!: Float32Array;
  private i32!: Int32Array;
  private disposed = false;
  private stale = true; // W_lᵀ copies need a transpose() before the next backward
  private staleF = true; // the column-chunked W_l copies need a blockW() before the next forward

  private constructor(spec: MlpSpec, params: Float32Array) {
    validateSpec(spec);
    this.spec = { ...spec, hidden: [...spec.hidden] };
    this.numParams = countParams(spec);
    this.k = new WebAssembly.Instance(kernelModule(), {}).exports as unknown as Kernel;
    const s = layerSizes(spec);
    this.sizes = s;
    const L = s.length - 1;
    this.outP = [];
    this.wOff = [];
    let nP = 0;
    for (let l = 0; l < L; l++) {
      const w = ceil4(s[l + 1]);
      this.outP.push(w);
      this.wOff.push(nP);
      nP += s[l] * w + w;
    }
    this.nP = nP;
    // Tape row: nnz indices (padded to 4), then each hidden layer's activations.
    const hOff: number[] = [];
    let rowFloats = ceil4(spec.nnz);
    for (let l = 0; l < L; l++) {
      hOff.push(l < L - 1 ? rowFloats * 4 : -1);
      if (l < L - 1) rowFloats += this.outP[l];
    }
    this.rowStride = rowFloats * 4;
    const maxS = Math.max(spec.nnz, ...s);
    const maxP = Math.max(...this.outP);
    const maxFanIn = Math.max(1, ...s.slice(1, -1));

    let at = align16(this.k.heapBase());
    const take = (bytes: number): number => {
      const a = at;
      at = align16(at + bytes);
      return a;
    };
    const table = take(L * TBL * 4);
    this.P = take(nP * 4);
    this.G = take(nP * 4);
    this.M = take(nP * 4);
    this.V = take(nP * 4);
    this.S = take(nP * 4);
    const wt: number[] = [0];
    for (let l = 1; l < L; l++) wt.push(take(this.outP[l] * this.outP[l - 1] * 4));
    const wb: number[] = [0];
    for (let l = 1; l < L; l++) wb.push(take(Math.ceil(this.outP[l] / CHUNK_FLOATS) * s[l] * CHUNK_FLOATS * 4));
    const wtb: number[] = [0];
    for (let l = 1; l < L; l++) wtb.push(take(Math.ceil(this.outP[l - 1] / CHUNK_FLOATS) * s[l + 1] * CHUNK_FLOATS * 4));
    // per-row active lists of a forward block (fan-ins of layers ≥ 1) and of a backward block (their fan-outs)
    const listCap = Math.max(1, ...s.slice(1)) * 8;
    const listRows = Math.max(FWD_ROWS, BLOCK_ROWS);
    const fLists = take(listRows * listCap);
    const fCnt = take(listRows * 4);
    const dBlk: number[] = [];
    for (let l = 0; l < L; l++) dBlk.push(take(BLOCK_ROWS * (this.outP[l] * 4 + 64))); // rows padded by a cache line (asm dStride)
    const list = take(Math.max(maxS, maxP, BLOCK_ROWS) * 8);
    const lt = take(maxFanIn * BLOCK_ROWS * 8);
    const ltCnt = take(maxFanIn * 4);
    const zeros = take(maxP * 4);
    const outS = take(maxP * 4);
    const rowS = take(this.rowStride);
    const fRows = take(FWD_ROWS * this.rowStride);
    const fOut = take(FWD_ROWS * maxP * 4);
    this.ioIdx = take(IO_ROWS * spec.nnz * 4);
    this.ioOut = take(IO_ROWS * spec.outputDim * 4);
    this.tapeBase = at;
    this.tapeCap = 0;
    this.ensureTape(INITIAL_TAPE_ROWS);

    for (let l = 0; l < L; l++) {
      const t = (table >> 2) + l * TBL;
      this.i32[t] = s[l];
      this.i32[t + 1] = this.outP[l];
      this.i32[t + 2] = this.P + this.wOff[l] * 4;
      this.i32[t + 3] = this.P + (this.wOff[l] + s[l] * this.outP[l]) * 4;
      this.i32[t + 4] = hOff[l];
      this.i32[t + 5] = wt[l];
      this.i32[t + 6] = dBlk[l];
      this.i32[t + 7] = s[l + 1];
      this.i32[t + 8] = wb[l];
      this.i32[t + 9] = wtb[l];
    }
    this.k.setup(L, table, spec.nnz, this.rowStride, this.G - this.P, list, lt, ltCnt, zeros, outS, rowS, BLOCK_ROWS);
    this.k.setupForward(fLists, fCnt, fRows, fOut, listCap, FWD_ROWS);
    this.writeFlat(this.P, params);
  }

  /** A network with PyTorch-default init from a seed (or an Rng); same seed ⇒ same params as TfjsMlp. */
  static create(spec: MlpSpec, seedOrRng: number | { uniform(): number }): FusedMlp {
    validateSpec(spec);
    const rng = typeof seedOrRng === 'number' ? new Rng(seedOrRng) : seedOrRng;
    return new FusedMlp(spec, initParams(spec, rng));
  }

  /** A network with the given flat parameters (shared layout). */
  static fromParams(spec: MlpSpec, params: Float32Array): FusedMlp {
    validateSpec(spec);
    if (params.length !== countParams(spec)) throw new RangeError(`expected ${countParams(spec)} parameters, got ${params.length}`);
    return new FusedMlp(spec, params);
  }

  get tapeRows(): number {
    return this.rows;
  }

  /** Rows the tape holds without growing wasm memory (it grows on demand). */
  get tapeCapacity(): number {
    return this.tapeCap;
  }

  /** Adam steps taken so far. */
  get adamSteps(): number {
    return this.step;
  }

  forward(indices: Int32Array, n: number, out: Float32Array, record: boolean): number {
    this.live();
    const { nnz, outputDim, inputDim } = this.spec;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad row count ${n}`);
    if (indices.length < n * nnz) throw new RangeError(`indices hold ${indices.length} values, need ${n * nnz}`);
    if (out.length < n * outputDim) throw new RangeError(`out holds ${out.length} values, need ${n * outputDim}`);
    const row0 = record ? this.rows : -1;
    if (record) this.ensureTape(this.rows + n);
    if (this.staleF) {
      this.k.blockW();
      this.staleF = false;
    }
    for (let s = 0; s < n; s += IO_ROWS) {
      const m = Math.min(IO_ROWS, n - s);
      const src = indices.subarray(s * nnz, (s + m) * nnz);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (!(v >= 0 && v < inputDim)) throw new RangeError(`input index ${v} outside [0, ${inputDim})`);
      }
      this.i32.set(src, this.ioIdx >> 2);
      const tape = record ? this.tapeBase + (this.rows + s) * this.rowStride : 0;
      this.k.forward(m, this.ioIdx, this.ioOut, outputDim, tape, record ? 1 : 0);
      out.set(this.f32.subarray(this.ioOut >> 2, (this.ioOut >> 2) + m * outputDim), s * outputDim);
    }
    if (record) this.rows += n;
    return row0;
  }

  backward(row0: number, n: number, dOut: Float32Array): void {
    this.live();
    const { outputDim } = this.spec;
    if (!Number.isInteger(row0) || !Number.isInteger(n) || row0 < 0 || n < 0 || row0 + n > this.rows) {
      throw new RangeError(`tape rows [${row0}, ${row0 + n}) outside the tape [0, ${this.rows})`);
    }
    if (dOut.length < n * outputDim) throw new RangeError(`dOut holds ${dOut.length} values, need ${n * outputDim}`);
    if (this.stale) {
      this.k.transpose();
      this.stale = false;
    }
    for (let s = 0; s < n; s += IO_ROWS) {
      const m = Math.min(IO_ROWS, n - s);
      this.f32.set(dOut.subarray(s * outputDim, (s + m) * outputDim), this.ioOut >> 2);
      this.k.backward(m, this.tapeBase + (row0 + s) * this.rowStride, this.ioOut, outputDim);
    }
  }

  resetTape(): void {
    this.rows = 0;
  }

  /** The kernel's forward is row by row (no cross-row blocking), so a copied row is bitwise the row a new pass would record. */
  copyTapeRows(src: Int32Array, n: number): number {
    this.live();
    if (!Number.isInteger(n) || n < 0 || src.length < n) throw new RangeError(`bad row count ${n}`);
    const row0 = this.rows;
    this.ensureTape(row0 + n);
    const w = this.rowStride >> 2;
    const base = this.tapeBase >> 2;
    for (let j = 0; j < n; j++) {
      const r = src[j];
      if (!(Number.isInteger(r) && r >= 0 && r < row0)) throw new RangeError(`tape row ${r} outside the tape [0, ${row0})`);
      const from = base + r * w;
      this.f32.copyWithin(base + (row0 + j) * w, from, from + w);
    }
    this.rows += n;
    return row0;
  }

  zeroGrad(): void {
    this.live();
    this.f32.fill(0, this.G >> 2, (this.G >> 2) + this.nP);
  }

  adamStep(lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    this.live();
    this.step++;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    this.k.adam(this.P, this.M, this.V, this.nP, beta1, beta2, eps, lr / bc1, 1 / Math.sqrt(bc2));
    this.stale = true;
    this.staleF = true;
  }

  getParams(): Float32Array {
    this.live();
    return this.readFlat(this.P);
  }

  setParams(p: Float32Array): void {
    this.live();
    this.writeFlat(this.P, p);
    this.stale = true;
    this.staleF = true;
  }

  getGrads(): Float32Array {
    this.live();
    return this.readFlat(this.G);
  }

  /** Adam moments and step count, flat layout (a copy). */
  getOptimizerState(): AdamState {
    this.live();
    return { step: this.step, m: this.readFlat(this.M), v: this.readFlat(this.V) };
  }

  setOptimizerState(st: AdamState): void {
    this.live();
    this.writeFlat(this.M, st.m);
    this.writeFlat(this.V, st.v);
    this.step = st.step;
  }

  polyakFrom(source: SparseMlp, tau: number): void {
    this.live();
    if (!(tau >= 0 && tau <= 1)) throw new RangeError(`polyak tau ${tau} outside [0, 1]`);
    if (source instanceof FusedMlp && sameSpec(source.spec, this.spec)) {
      source.live();
      // Same padded layout: copy the raw parameter block across instances.
      this.f32.set(source.f32.subarray(source.P >> 2, (source.P >> 2) + source.nP), this.S >> 2);
    } else {
      if (source.numParams !== this.numParams) throw new RangeError('polyakFrom: parameter counts differ');
      this.writeFlat(this.S, source.getParams());
    }
    this.k.polyak(this.P, this.S, this.nP, tau);
    this.stale = true;
    this.staleF = true;
  }

  dispose(): void {
    this.disposed = true;
    this.rows = 0;
    this.f32 = new Float32Array(0);
    this.i32 = new Int32Array(0);
  }

  private live(): void {
    if (this.disposed) throw new Error('FusedMlp used after dispose()');
  }

  private ensureTape(rows: number): void {
    if (rows <= this.tapeCap && this.f32) return;
    const mem = this.k.memory;
    let cap = Math.max(rows, this.tapeCap);
    if (rows > this.tapeCap && this.tapeCap > 0) cap = Math.max(rows, Math.ceil(this.tapeCap * 1.5));
    const need = this.tapeBase + cap * this.rowStride;
    const have = mem.buffer.byteLength;
    if (need > have) {
      const pages = Math.ceil((need - have) / PAGE);
      try {
        mem.grow(pages);
      } catch (err) {
        throw new RangeError(`FusedMlp tape of ${cap} rows needs ${need} bytes of wasm memory: ${(err as Error).message}`);
      }
    }
    this.tapeCap = Math.floor((mem.buffer.byteLength - this.tapeBase) / this.rowStride);
    // Growth detaches the old ArrayBuffer: refresh the views.
    this.f32 = new Float32Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
  }

  /** Padded wasm block at byte address `at` → shared flat layout. */
  private readFlat(at: number): Float32Array {
    const s = this.sizes;
    const out = new Float32Array(this.numParams);
    let o = 0;
    for (let l = 0; l + 1 < s.length; l++) {
      const fanIn = s[l];
      const fanOut = s[l + 1];
      const w = this.outP[l];
      const base = (at >> 2) + this.wOff[l];
      for (let i = 0; i <= fanIn; i++) {
        // i == fanIn is the bias row
        const src = base + i * w;
        out.set(this.f32.subarray(src, src + fanOut), o);
        o += fanOut;
      }
    }
    return out;
  }

  /** Shared flat layout → padded wasm block at byte address `at` (pads zeroed). */
  private writeFlat(at: number, p: Float32Array): void {
    if (p.length !== this.numParams) throw new RangeError(`expected ${this.numParams} values, got ${p.length}`);
    const s = this.sizes;
    this.f32.fill(0, at >> 2, (at >> 2) + this.nP);
    let o = 0;
    for (let l = 0; l + 1 < s.length; l++) {
      const fanIn = s[l];
      const fanOut = s[l + 1];
      const w = this.outP[l];
      const base = (at >> 2) + this.wOff[l];
      for (let i = 0; i <= fanIn; i++) {
        this.f32.set(p.subarray(o, o + fanOut), base + i * w);
        o += fanOut;
      }
    }
  }
}

function sameSpec(a: MlpSpec, b: MlpSpec): boolean {
  return (
    a.inputDim === b.inputDim &&
    a.nnz === b.nnz &&
    a.outputDim === b.outputDim &&
    a.hidden.length === b.hidden.length &&
    a.hidden.every((h, i) => h === b.hidden[i])
  );
}

export function validateSpec(spec: MlpSpec): void {
  const ok = (x: number): boolean => Number.isInteger(x) && x > 0;
  if (!ok(spec.inputDim) || !ok(spec.nnz) || !ok(spec.outputDim) || !spec.hidden.every(ok)) {
    throw new RangeError(`bad MLP spec ${JSON.stringify(spec)}: sizes must be positive integers`);
  }
  if (spec.nnz > spec.inputDim) throw new RangeError(`bad MLP spec: nnz ${spec.nnz} > inputDim ${spec.inputDim}`);
}
