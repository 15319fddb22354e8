import { readFileSync } from 'node:fs';

/** One dense layer: y = act(x · W + b), W row-major [din × dout]. */
export interface DenseLayer {
  W: Float32Array;
  b: Float32Array;
  din: number;
  dout: number;
  relu: boolean;
}

interface DenseExports {
  memory: WebAssembly.Memory;
  dense(x: number, rows: number, din: number, W: number, dout: number, b: number, y: number, relu: number): void;
}

let compiled: WebAssembly.Module | undefined;

function denseModule(): WebAssembly.Module {
  if (!compiled) {
    // dist/src/finetune/head-kernel.js → dist/wasm/dense.wasm (asm/dense.ts, built by npm run build)
    const url = new URL('../../wasm/dense.wasm', import.meta.url);
    compiled = new WebAssembly.Module(readFileSync(url) as Uint8Array<ArrayBuffer>);
  }
  return compiled;
}

const align = (n: number) => (n + 15) & ~15;

/**
 * A stack of dense layers evaluated by the wasm-SIMD kernel of asm/dense.ts on a frozen copy
 * of the weights: the sampler hook of the LM head runs it once per generated token.
 */
export class DenseStack {
  private readonly k: DenseExports;
  private readonly wOff: number[] = [];
  private readonly bOff: number[] = [];
  private bufStart = 0;
  private capacity = 0;
  private xOff = 0;
  private yOff: number[] = [];

  constructor(private readonly layers: DenseLayer[]) {
    this.k = new WebAssembly.Instance(denseModule(), {}).exports as unknown as DenseExports;
    let off = 16;
    for (const l of layers) {
      this.wOff.push(off);
      off = align(off + l.W.length * 4);
      this.bOff.push(off);
      off = align(off + l.b.length * 4);
    }
    this.bufStart = off;
    this.ensure(16);
    const f = new Float32Array(this.k.memory.buffer);
    layers.forEach((l, i) => {
      f.set(l.W, this.wOff[i] / 4);
      f.set(l.b, this.bOff[i] / 4);
    });
  }

  /** Lays out the row buffers for `rows` rows, growing memory when needed. */
  private ensure(rows: number): void {
    if (rows <= this.capacity) return;
    let off = this.bufStart;
    this.xOff = off;
    off = align(off + rows * this.layers[0].din * 4);
    this.yOff = this.layers.map((l) => {
      const o = off;
      off = align(off + rows * l.dout * 4);
      return o;
    });
    const need = off - this.k.memory.buffer.byteLength;
    if (need > 0) this.k.memory.grow(Math.ceil(need / 65536));
    this.capacity = rows;
  }

  /** Output of the last layer for x [rows × din0] (a fresh array). */
  run(x: Float32Array, rows: number): Float32Array {
    this.ensure(rows);
    new Float32Array(this.k.memory.buffer, this.xOff, rows * this.layers[0].din).set(x.subarray(0, rows * this.layers[0].din));
    let input = this.xOff;
    this.layers.forEach((l, i) => {
      this.k.dense(input, rows, l.din, this.wOff[i], l.dout, this.bOff[i], this.yOff[i], l.relu ? 1 : 0);
      input = this.yOff[i];
    });
    const last = this.layers[this.layers.length - 1];
    return new Float32Array(this.k.memory.buffer, input, rows * last.dout).slice();
  }
}
