// Fused sparse-input MLP kernel (forward on a tape, backward, Adam, Polyak), f32x4 SIMD.
// Compiled by scripts/build-wasm.mjs to dist/wasm/fused_mlp.wasm; driven by src/nn/fused-mlp.ts,
// which owns the memory layout and passes byte addresses in. See docs/design.md §3 "Performance notes".
//
// Layout (all addresses 16-byte aligned, all widths padded to a multiple of 4 floats):
//   P   parameters: per layer l, W_l [fanIn × outP_l] row-major then b_l [outP_l]
//   G   gradients, same layout, at P + gDelta
//   WT  for l ≥ 1, W_lᵀ [outP_l × inP_l] (inP_l = outP_{l-1}), refreshed by transpose()
//   WB  for l ≥ 1, W_l in column chunks of 24 floats [chunk][fanIn][24], refreshed by blockW(),
//       so the forward's working set per chunk is contiguous and stays in L1 (see forward)
//   WTB for l ≥ 1, W_lᵀ (rows < fanOut) in column chunks [chunk][fanOut][24], refreshed by
//       transpose(), for the backward's deltas (same idea)
//   delta blocks: BR rows of outP_l floats, each row padded by one cache line (dStride)
//   layer table (TBL i32 per layer, see the t* accessors)
//   tape row: nnz input indices (i32, padded to 4), then each hidden layer's activations.
// Padded columns have zero weights and biases, so they stay exactly 0 through ReLU, Adam and
// Polyak, and never enter the active lists.
//
// Every product is one kernel, `accum`: dst = b + Σ_e val_e · M[row_e, :] over a list of
// (row byte offset, value) pairs, with the output columns held in registers while the rows
// stream by. Forward: rows of W_l for the active (> 0) inputs. Backward, per row: rows of
// W_lᵀ for the nonzero output deltas (then the ReLU mask). Weight gradients, per block of
// up to BR rows: for each input unit i, rows of the delta block for the rows where unit i is
// active (a transposed list), accumulated straight into G's row i.

const TBL: usize = 10;
let L: i32 = 0;
let tbl: usize = 0;
let nnz: i32 = 0;
let rowStride: usize = 0;
let gDelta: usize = 0;
let list: usize = 0; // (u32 byte offset, f32 value) pairs
let lt: usize = 0; // transposed lists: maxFanIn × BR pairs
let ltCnt: usize = 0; // their lengths (u32 × maxFanIn)
let zeros: usize = 0; // a zero row (bias of the backward products)
let outS: usize = 0;
let rowS: usize = 0; // tape row used when forward does not record
let BR: i32 = 64; // rows per backward block
// forward in row blocks (see forward): per-row active lists and counts, scratch rows (no record), output rows
let fLists: usize = 0;
let fCnt: usize = 0;
let fRows: usize = 0;
let fOut: usize = 0;
let fListCap: usize = 0; // bytes per row list
let FR: i32 = 32; // rows per forward block
const CHUNK: usize = 96; // bytes of one column chunk row in the blocked copy (6 f32x4 registers)

export function heapBase(): usize {
  return __heap_base;
}

export function setup(
  nLayers: i32,
  table: usize,
  nnz_: i32,
  stride: usize,
  gd: usize,
  list_: usize,
  lt_: usize,
  ltCnt_: usize,
  zeros_: usize,
  o: usize,
  rs: usize,
  br: i32,
): void {
  L = nLayers;
  tbl = table;
  nnz = nnz_;
  rowStride = stride;
  gDelta = gd;
  list = list_;
  lt = lt_;
  ltCnt = ltCnt_;
  zeros = zeros_;
  outS = o;
  rowS = rs;
  BR = br;
}

// @ts-ignore: decorator
@inline function tI(l: i32, f: usize): usize {
  return <usize>load<u32>(tbl + ((<usize>l * TBL + f) << 2));
}

/** Byte stride of a row of layer l's delta block: padded by one cache line so rows 1 KB apart do not share L1 sets. */
// @ts-ignore: decorator
@inline function dStride(l: i32): usize {
  return (tI(l, 1) << 2) + 64;
}
// fields: 0 fanIn, 1 outP, 2 W, 3 b, 4 hOff (tape offset of the layer's output), 5 WT,
// 6 delta block (BR × outP), 7 fanOut, 8 WB (l ≥ 1: W_l in column chunks, see blockW),
// 9 WTB (l ≥ 1: W_lᵀ in column chunks, see transpose)

export function setupForward(lists: usize, cnt: usize, rows: usize, outRows: usize, listCap: usize, fr: i32): void {
  fLists = lists;
  fCnt = cnt;
  fRows = rows;
  fOut = outRows;
  fListCap = listCap;
  FR = fr;
}

/** Pairs (i · mul, h_i) for the h_i > 0 among h[0..n), branch-free; returns their count. */
function listPos(h: usize, n: i32, mul: usize, out: usize): usize {
  let pe = out;
  let off: usize = 0;
  for (let i: i32 = 0; i < n; i++) {
    const v = load<f32>(h + (<usize>i << 2));
    store<u32>(pe, <u32>off);
    store<f32>(pe, v, 4);
    pe += <usize>(v > 0) << 3;
    off += mul;
  }
  return (pe - out) >> 3;
}

/** Pairs (i · mul, d_i) for the d_i ≠ 0 among d[0..n); returns their count. */
function listNonzero(d: usize, n: i32, mul: usize, out: usize): usize {
  let pe = out;
  let off: usize = 0;
  for (let i: i32 = 0; i < n; i++) {
    const v = load<f32>(d + (<usize>i << 2));
    store<u32>(pe, <u32>off);
    store<f32>(pe, v, 4);
    pe += <usize>(v != 0) << 3;
    off += mul;
  }
  return (pe - out) >> 3;
}

// @ts-ignore: decorator
@inline function acc6(list: usize, end: usize, W: usize, b: usize, dst: usize, relu: bool): void {
  let a0 = load<v128>(b, 0);
  let a1 = load<v128>(b, 16);
  let a2 = load<v128>(b, 32);
  let a3 = load<v128>(b, 48);
  let a4 = load<v128>(b, 64);
  let a5 = load<v128>(b, 80);
  for (let pe = list; pe < end; pe += 8) {
    const p = W + <usize>load<u32>(pe);
    const s = v128.load32_splat(pe, 4);
    a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
    a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
    a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
    a3 = f32x4.add(a3, f32x4.mul(s, load<v128>(p, 48)));
    a4 = f32x4.add(a4, f32x4.mul(s, load<v128>(p, 64)));
    a5 = f32x4.add(a5, f32x4.mul(s, load<v128>(p, 80)));
  }
  if (relu) {
    a0 = f32x4.pmax(a0, f32x4.splat(0));
    a1 = f32x4.pmax(a1, f32x4.splat(0));
    a2 = f32x4.pmax(a2, f32x4.splat(0));
    a3 = f32x4.pmax(a3, f32x4.splat(0));
    a4 = f32x4.pmax(a4, f32x4.splat(0));
    a5 = f32x4.pmax(a5, f32x4.splat(0));
  }
  store<v128>(dst, a0, 0);
  store<v128>(dst, a1, 16);
  store<v128>(dst, a2, 32);
  store<v128>(dst, a3, 48);
  store<v128>(dst, a4, 64);
  store<v128>(dst, a5, 80);
}

// @ts-ignore: decorator
@inline function acc4(list: usize, end: usize, W: usize, b: usize, dst: usize, relu: bool): void {
  let a0 = load<v128>(b, 0);
  let a1 = load<v128>(b, 16);
  let a2 = load<v128>(b, 32);
  let a3 = load<v128>(b, 48);
  for (let pe = list; pe < end; pe += 8) {
    const p = W + <usize>load<u32>(pe);
    const s = v128.load32_splat(pe, 4);
    a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
    a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
    a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
    a3 = f32x4.add(a3, f32x4.mul(s, load<v128>(p, 48)));
  }
  if (relu) {
    a0 = f32x4.pmax(a0, f32x4.splat(0));
    a1 = f32x4.pmax(a1, f32x4.splat(0));
    a2 = f32x4.pmax(a2, f32x4.splat(0));
    a3 = f32x4.pmax(a3, f32x4.splat(0));
  }
  store<v128>(dst, a0, 0);
  store<v128>(dst, a1, 16);
  store<v128>(dst, a2, 32);
  store<v128>(dst, a3, 48);
}

// @ts-ignore: decorator
@inline function acc3(list: usize, end: usize, W: usize, b: usize, dst: usize, relu: bool): void {
  let a0 = load<v128>(b, 0);
  let a1 = load<v128>(b, 16);
  let a2 = load<v128>(b, 32);
  for (let pe = list; pe < end; pe += 8) {
    const p = W + <usize>load<u32>(pe);
    const s = v128.load32_splat(pe, 4);
    a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
    a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
    a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
  }
  if (relu) {
    a0 = f32x4.pmax(a0, f32x4.splat(0));
    a1 = f32x4.pmax(a1, f32x4.splat(0));
    a2 = f32x4.pmax(a2, f32x4.splat(0));
  }
  store<v128>(dst, a0, 0);
  store<v128>(dst, a1, 16);
  store<v128>(dst, a2, 32);
}

// @ts-ignore: decorator
@inline function acc2(list: usize, end: usize, W: usize, b: usize, dst: usize, relu: bool): void {
  let a0 = load<v128>(b, 0);
  let a1 = load<v128>(b, 16);
  for (let pe = list; pe < end; pe += 8) {
    const p = W + <usize>load<u32>(pe);
    const s = v128.load32_splat(pe, 4);
    a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
    a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
  }
  if (relu) {
    a0 = f32x4.pmax(a0, f32x4.splat(0));
    a1 = f32x4.pmax(a1, f32x4.splat(0));
  }
  store<v128>(dst, a0, 0);
  store<v128>(dst, a1, 16);
}

// @ts-ignore: decorator
@inline function acc1(list: usize, end: usize, W: usize, b: usize, dst: usize, relu: bool): void {
  let a0 = load<v128>(b, 0);
  for (let pe = list; pe < end; pe += 8) {
    const p = W + <usize>load<u32>(pe);
    const s = v128.load32_splat(pe, 4);
    a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
  }
  if (relu) {
    a0 = f32x4.pmax(a0, f32x4.splat(0));
  }
  store<v128>(dst, a0, 0);
}

/**
 * dst[0..outP) = b + Σ_e val_e · M[off_e ..], ReLU when `relu`, for the `cnt` pairs at `lst`.
 * Columns go 6 registers at a time (6 accumulators + 6 loads + the splat fit in the 15
 * allocatable xmm registers; 8 would spill an accumulator and serialize the loop on memory).
 */
function accum(lst: usize, cnt: usize, M: usize, b: usize, dst: usize, outP: i32, relu: bool): void {
  const end = lst + (cnt << 3);
  let c: usize = 0;
  const nb = <usize>outP << 2;
  for (; c + 96 <= nb; c += 96) acc6(lst, end, M + c, b + c, dst + c, relu);
  const rest = nb - c;
  if (rest >= 64) {
    acc4(lst, end, M + c, b + c, dst + c, relu);
    c += 64;
    if (rest == 80) acc1(lst, end, M + c, b + c, dst + c, relu);
  } else if (rest == 48) acc3(lst, end, M + c, b + c, dst + c, relu);
  else if (rest == 32) acc2(lst, end, M + c, b + c, dst + c, relu);
  else if (rest == 16) acc1(lst, end, M + c, b + c, dst + c, relu);
}

/**
 * dst[0..wBytes/4) = b + Σ_e val_e · M[off_e ..] for a column chunk of at most 6 registers
 * (wBytes ≤ 96), ReLU when `relu`: `accum` restricted to one chunk of the blocked copy.
 */
function accumChunk(lst: usize, cnt: usize, M: usize, b: usize, dst: usize, wBytes: usize, relu: bool): void {
  const end = lst + (cnt << 3);
  if (wBytes == 96) acc6(lst, end, M, b, dst, relu);
  else if (wBytes >= 64) {
    acc4(lst, end, M, b, dst, relu);
    if (wBytes == 80) acc1(lst, end, M + 64, b + 64, dst + 64, relu);
  } else if (wBytes == 48) acc3(lst, end, M, b, dst, relu);
  else if (wBytes == 32) acc2(lst, end, M, b, dst, relu);
  else if (wBytes == 16) acc1(lst, end, M, b, dst, relu);
}

/**
 * Forward pass of n rows. idx: i32 [n × nnz]; out: f32 [n × outDim]. When `record`, row r's
 * indices and hidden activations go to tape + r·rowStride; otherwise to scratch rows.
 *
 * Rows go in blocks of FR. Layer 0 is a sum of weight rows per row. For a layer l ≥ 1 every
 * row of the block first lists its active inputs; then, one column chunk of the output at a
 * time, every row accumulates that chunk from the blocked copy of W_l (blockW), whose chunk is
 * one contiguous fanIn × 24 floats (24 KB for 256 inputs), so it stays in L1 across the
 * block's rows instead of streaming W_l from L2 for every row. Each output element still sums
 * its terms in the same order (bias, then active inputs ascending): results are bitwise those
 * of a row-by-row pass.
 */
export function forward(n: i32, idx: usize, out: usize, outDim: i32, tape: usize, record: i32): void {
  const nz = <usize>nnz;
  const rb0 = tI(0, 1) << 2;
  for (let r0: i32 = 0; r0 < n; r0 += FR) {
    const nb = min(FR, n - r0);
    // layer 0: a sum of weight rows (the one-hot inputs)
    for (let r: i32 = 0; r < nb; r++) {
      const row = record ? tape + <usize>(r0 + r) * rowStride : fRows + <usize>r * rowStride;
      const src = idx + ((<usize>(r0 + r) * nz) << 2);
      for (let k: usize = 0; k < nz; k++) {
        const ix = load<i32>(src + (k << 2));
        store<i32>(row + (k << 2), ix);
        store<u32>(list + (k << 3), <u32>(<usize>ix * rb0));
        store<f32>(list + (k << 3), 1.0, 4);
      }
      const last = L == 1;
      const dst = last ? fOut + ((<usize>r * tI(0, 1)) << 2) : row + tI(0, 4);
      accum(list, nz, tI(0, 2), tI(0, 3), dst, <i32>tI(0, 1), !last);
    }
    for (let l: i32 = 1; l < L; l++) {
      const last = l == L - 1;
      const outP = tI(l, 1);
      const inH = tI(l - 1, 4);
      for (let r: i32 = 0; r < nb; r++) {
        const row = record ? tape + <usize>(r0 + r) * rowStride : fRows + <usize>r * rowStride;
        store<u32>(fCnt + (<usize>r << 2), <u32>listPos(row + inH, <i32>tI(l, 0), CHUNK, fLists + <usize>r * fListCap));
      }
      const nBytes = outP << 2;
      const WB = tI(l, 8);
      const chunkBytes = tI(l, 0) * CHUNK;
      const b = tI(l, 3);
      for (let c: usize = 0, k: usize = 0; c < nBytes; c += CHUNK, k++) {
        const w = min(CHUNK, nBytes - c);
        const M = WB + k * chunkBytes;
        for (let r: i32 = 0; r < nb; r++) {
          const row = record ? tape + <usize>(r0 + r) * rowStride : fRows + <usize>r * rowStride;
          const dst = last ? fOut + <usize>r * nBytes : row + tI(l, 4);
          accumChunk(fLists + <usize>r * fListCap, <usize>load<u32>(fCnt + (<usize>r << 2)), M, b + c, dst + c, w, !last);
        }
      }
    }
    const oBytes = tI(L - 1, 1) << 2;
    for (let r: i32 = 0; r < nb; r++) {
      memory.copy(out + ((<usize>(r0 + r) * <usize>outDim) << 2), fOut + <usize>r * oBytes, <usize>outDim << 2);
    }
  }
}

/** WB_l ← W_l in column chunks for l ≥ 1: chunk k is rows i = 0..fanIn of columns [24k, 24k + 24), 96 bytes a row. */
export function blockW(): void {
  for (let l: i32 = 1; l < L; l++) {
    const fanIn = tI(l, 0);
    const nBytes = tI(l, 1) << 2;
    const W = tI(l, 2);
    const WB = tI(l, 8);
    const chunkBytes = fanIn * CHUNK;
    for (let c: usize = 0, k: usize = 0; c < nBytes; c += CHUNK, k++) {
      const w = min(CHUNK, nBytes - c);
      const M = WB + k * chunkBytes;
      for (let i: usize = 0; i < fanIn; i++) memory.copy(M + i * CHUNK, W + i * nBytes + c, w);
    }
  }
}

/** dst[0..n) += src[0..n), n a multiple of 4. */
function addInto(dst: usize, src: usize, n: i32): void {
  const end = <usize>n << 2;
  for (let j: usize = 0; j < end; j += 16) {
    store<v128>(dst + j, f32x4.add(load<v128>(dst + j), load<v128>(src + j)));
  }
}

/** d[0..n) = d · (h > 0), n a multiple of 4 (the ReLU derivative). */
function maskActive(d: usize, h: usize, n: i32): void {
  const end = <usize>n << 2;
  const z = f32x4.splat(0);
  for (let j: usize = 0; j < end; j += 16) {
    store<v128>(d + j, v128.and(load<v128>(d + j), f32x4.gt(load<v128>(h + j), z)));
  }
}

/**
 * Accumulates gradients for n tape rows starting at address `tape`, given dL/dout
 * dOut: f32 [n × outDim]. Reads only the tape (no forward recomputation); needs W_lᵀ current
 * (call transpose() after the parameters change).
 */
export function backward(n: i32, tape: usize, dOut: usize, outDim: i32): void {
  const gd = gDelta;
  for (let b0: i32 = 0; b0 < n; b0 += BR) {
    const nb = min(BR, n - b0);
    const tape0 = tape + <usize>b0 * rowStride;
    // Deltas, top layer down: D_{l−1} = (W_lᵀ-list product of D_l) ⊙ ReLU′, over the whole block
    // one column chunk of W_lᵀ at a time (as in forward), each element summed in the same order.
    for (let r: i32 = 0; r < nb; r++) {
      const D = tI(L - 1, 6) + <usize>r * dStride(L - 1);
      memory.fill(D, 0, tI(L - 1, 1) << 2);
      memory.copy(D, dOut + ((<usize>(b0 + r) * <usize>outDim) << 2), <usize>outDim << 2);
    }
    for (let l: i32 = L - 1; l >= 1; l--) {
      const inBytes = tI(l - 1, 1) << 2;
      const fanOut = tI(l, 7);
      for (let r: i32 = 0; r < nb; r++) {
        const Dl = tI(l, 6) + <usize>r * dStride(l);
        store<u32>(fCnt + (<usize>r << 2), <u32>listNonzero(Dl, <i32>fanOut, CHUNK, fLists + <usize>r * fListCap));
      }
      const WTB = tI(l, 9);
      for (let c: usize = 0, k: usize = 0; c < inBytes; c += CHUNK, k++) {
        const w = min(CHUNK, inBytes - c);
        const M = WTB + k * fanOut * CHUNK;
        for (let r: i32 = 0; r < nb; r++) {
          const Dn = tI(l - 1, 6) + <usize>r * dStride(l - 1);
          accumChunk(fLists + <usize>r * fListCap, <usize>load<u32>(fCnt + (<usize>r << 2)), M, zeros, Dn + c, w, false);
        }
      }
      for (let r: i32 = 0; r < nb; r++) {
        const Dn = tI(l - 1, 6) + <usize>r * dStride(l - 1);
        maskActive(Dn, tape0 + <usize>r * rowStride + tI(l - 1, 4), <i32>tI(l - 1, 1));
      }
    }
    // Parameter gradients, layer by layer, over the block.
    for (let l: i32 = 0; l < L; l++) {
      const outP = <i32>tI(l, 1);
      const rowBytes = <usize>outP << 2;
      const dS = dStride(l);
      const Dblk = tI(l, 6);
      const gW = tI(l, 2) + gd;
      const gb = tI(l, 3) + gd;
      // bias: Σ_r D_r
      for (let r: i32 = 0; r < nb; r++) {
        store<u32>(list + (<usize>r << 3), <u32>(<usize>r * dS));
        store<f32>(list + (<usize>r << 3), 1.0, 4);
      }
      accum(list, <usize>nb, Dblk, gb, gb, outP, false);
      if (l == 0) {
        for (let r: i32 = 0; r < nb; r++) {
          const row = tape0 + <usize>r * rowStride;
          const D = Dblk + <usize>r * dS;
          for (let k: usize = 0; k < <usize>nnz; k++) {
            addInto(gW + <usize>load<i32>(row + (k << 2)) * rowBytes, D, outP);
          }
        }
        continue;
      }
      // Transposed lists: for each input unit i, the rows where it is active.
      const fanIn = <i32>tI(l, 0);
      const hOff = tI(l - 1, 4);
      const cap = <usize>BR << 3;
      memory.fill(ltCnt, 0, <usize>fanIn << 2);
      for (let r: i32 = 0; r < nb; r++) {
        const h = tape0 + <usize>r * rowStride + hOff;
        const off = <u32>(<usize>r * dS);
        let pl = lt;
        let pc = ltCnt;
        for (let i: i32 = 0; i < fanIn; i++) {
          const v = load<f32>(h + (<usize>i << 2));
          const c = load<u32>(pc);
          const pe = pl + (<usize>c << 3);
          store<u32>(pe, off);
          store<f32>(pe, v, 4);
          store<u32>(pc, c + <u32>(v > 0));
          pl += cap;
          pc += 4;
        }
      }
      // Column chunk outermost: the block's deltas of one chunk (BR × 24 floats) stay in L1
      // while every input unit's row of G takes them; each G element still sums its rows in order.
      for (let c: usize = 0; c < rowBytes; c += CHUNK) {
        const w = min(CHUNK, rowBytes - c);
        for (let i: i32 = 0; i < fanIn; i++) {
          const cnt = <usize>load<u32>(ltCnt + (<usize>i << 2));
          if (cnt == 0) continue;
          const g = gW + <usize>i * rowBytes + c;
          accumChunk(lt + <usize>i * cap, cnt, Dblk + c, g, g, w, false);
        }
      }
    }
  }
}

/** WT_l ← W_lᵀ for l ≥ 1 (4×4 SIMD blocks; WT's padded columns stay zero). */
export function transpose(): void {
  for (let l: i32 = 1; l < L; l++) {
    const fanIn = tI(l, 0);
    const outP = tI(l, 1);
    const inP = tI(l - 1, 1);
    const W = tI(l, 2);
    const WT = tI(l, 5);
    const rb = outP << 2;
    const rbT = inP << 2;
    let i: usize = 0;
    for (; i + 4 <= fanIn; i += 4) {
      const w0 = W + i * rb;
      for (let j: usize = 0; j < outP; j += 4) {
        const p = w0 + (j << 2);
        const a = load<v128>(p);
        const b = load<v128>(p + rb);
        const c = load<v128>(p + 2 * rb);
        const d = load<v128>(p + 3 * rb);
        const t0 = v128.shuffle<f32>(a, b, 0, 4, 1, 5);
        const t1 = v128.shuffle<f32>(a, b, 2, 6, 3, 7);
        const t2 = v128.shuffle<f32>(c, d, 0, 4, 1, 5);
        const t3 = v128.shuffle<f32>(c, d, 2, 6, 3, 7);
        const q = WT + j * rbT + (i << 2);
        store<v128>(q, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
        store<v128>(q + rbT, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
        store<v128>(q + 2 * rbT, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
        store<v128>(q + 3 * rbT, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
      }
    }
    for (; i < fanIn; i++) {
      for (let j: usize = 0; j < outP; j++) store<f32>(WT + j * rbT + (i << 2), load<f32>(W + i * rb + (j << 2)));
    }
    // WTB_l: rows j < fanOut of WT_l in column chunks of 24 floats, [chunk][j][24]
    const fanOut = tI(l, 7);
    const WTB = tI(l, 9);
    for (let c: usize = 0, k: usize = 0; c < rbT; c += CHUNK, k++) {
      const w = min(CHUNK, rbT - c);
      const M = WTB + k * fanOut * CHUNK;
      for (let j: usize = 0; j < fanOut; j++) memory.copy(M + j * CHUNK, WT + j * rbT + c, w);
    }
  }
}

/**
 * Adam (torch semantics) over n floats: m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − stepSize · m / (√v · invSqrtBc2 + eps), with stepSize = lr / (1 − β1^t) and
 * invSqrtBc2 = 1 / √(1 − β2^t). Gradients are read at p + gDelta.
 */
export function adam(P: usize, M: usize, V: usize, n: i32, b1: f32, b2: f32, eps: f32, stepSize: f32, invSqrtBc2: f32): void {
  const gd = gDelta;
  const vb1 = f32x4.splat(b1);
  const vc1 = f32x4.splat(1 - b1);
  const vb2 = f32x4.splat(b2);
  const vc2 = f32x4.splat(1 - b2);
  const veps = f32x4.splat(eps);
  const vss = f32x4.splat(stepSize);
  const vib = f32x4.splat(invSqrtBc2);
  const end = <usize>n << 2;
  for (let j: usize = 0; j < end; j += 16) {
    const g = load<v128>(P + gd + j);
    const m = f32x4.add(f32x4.mul(vb1, load<v128>(M + j)), f32x4.mul(vc1, g));
    const v = f32x4.add(f32x4.mul(vb2, load<v128>(V + j)), f32x4.mul(vc2, f32x4.mul(g, g)));
    store<v128>(M + j, m);
    store<v128>(V + j, v);
    const den = f32x4.add(f32x4.mul(f32x4.sqrt(v), vib), veps);
    store<v128>(P + j, f32x4.sub(load<v128>(P + j), f32x4.mul(vss, f32x4.div(m, den))));
  }
}

/** dst ← (1 − tau)·dst + tau·src over n floats (tau = 1 copies exactly). */
export function polyak(dst: usize, src: usize, n: i32, tau: f32): void {
  const vt = f32x4.splat(tau);
  const vk = f32x4.splat(1 - tau);
  const end = <usize>n << 2;
  for (let j: usize = 0; j < end; j += 16) {
    store<v128>(dst + j, f32x4.add(f32x4.mul(vk, load<v128>(dst + j)), f32x4.mul(vt, load<v128>(src + j))));
  }
}
