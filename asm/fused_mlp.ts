// Fused sparse-input MLP kernel (forward on a tape, backward, Adam, Polyak), f32x4 SIMD.
// Compiled by scripts/build-wasm.mjs to dist/wasm/fused_mlp.wasm; driven by src/nn/fused-mlp.ts,
// which owns the memory layout and passes byte addresses in. See DESIGN.md §3 "Performance notes".
//
// Layout (all addresses 16-byte aligned, all widths padded to a multiple of 4 floats):
//   P  parameters: per layer l, W_l [fanIn × outP_l] row-major then b_l [outP_l]
//   G  gradients, same layout, at P + gDelta (so a weight row's gradient is at row + gDelta)
//   layer table (5 × i32 per layer): fanIn, outP, W address, b address, offset in a tape row
//     of the layer's (post-ReLU) output (-1 for the output layer)
//   tape row: nnz input indices (i32, padded to 4), then each hidden layer's activations.
// Padded columns have zero weights and biases, so they stay exactly 0 through ReLU, Adam and
// Polyak, and never enter the active lists.

let L: i32 = 0;
let tbl: usize = 0;
let nnz: i32 = 0;
let rowStride: usize = 0;
let gDelta: usize = 0;
let listIdx: usize = 0; // u32 indices of the active inputs of the current layer
let listVal: usize = 0; // their values
let bufA: usize = 0;
let bufB: usize = 0;
let outS: usize = 0;
let rowS: usize = 0; // tape row used when forward does not record

export function heapBase(): usize {
  return __heap_base;
}

export function setup(
  nLayers: i32,
  table: usize,
  nnz_: i32,
  stride: usize,
  gd: usize,
  li: usize,
  lv: usize,
  a: usize,
  b: usize,
  o: usize,
  rs: usize,
): void {
  L = nLayers;
  tbl = table;
  nnz = nnz_;
  rowStride = stride;
  gDelta = gd;
  listIdx = li;
  listVal = lv;
  bufA = a;
  bufB = b;
  outS = o;
  rowS = rs;
}

// @ts-ignore: decorator
@inline function tFanIn(l: i32): i32 {
  return load<i32>(tbl + ((<usize>l * 5) << 2));
}
// @ts-ignore: decorator
@inline function tOutP(l: i32): i32 {
  return load<i32>(tbl + ((<usize>l * 5) << 2), 4);
}
// @ts-ignore: decorator
@inline function tW(l: i32): usize {
  return load<u32>(tbl + ((<usize>l * 5) << 2), 8);
}
// @ts-ignore: decorator
@inline function tB(l: i32): usize {
  return load<u32>(tbl + ((<usize>l * 5) << 2), 12);
}
// @ts-ignore: decorator
@inline function tH(l: i32): usize {
  return load<u32>(tbl + ((<usize>l * 5) << 2), 16);
}

/** Active (> 0) entries of h[0..n) into listIdx/listVal, branch-free; returns their count. */
function buildList(h: usize, n: i32): i32 {
  let cnt: usize = 0;
  const li = listIdx;
  const lv = listVal;
  for (let i: i32 = 0; i < n; i++) {
    const v = load<f32>(h + (<usize>i << 2));
    store<u32>(li + (cnt << 2), i);
    store<f32>(lv + (cnt << 2), v);
    cnt += <usize>(v > 0);
  }
  return <i32>cnt;
}

/**
 * dst[0..outP) = b + Σ_e val_e · W[idx_e, :], ReLU when `relu`. Output columns are processed
 * in blocks of 32 held in 8 registers while the active rows stream by, so dst is written once.
 */
function accum(cnt: i32, W: usize, b: usize, dst: usize, outP: i32, relu: bool): void {
  const rowBytes = <usize>outP << 2;
  const li = listIdx;
  const lv = listVal;
  const liEnd = li + (<usize>cnt << 2);
  const zero = f32x4.splat(0);
  let c: usize = 0;
  const end = <usize>outP << 2;
  for (; c + 128 <= end; c += 128) {
    let a0 = load<v128>(b + c, 0);
    let a1 = load<v128>(b + c, 16);
    let a2 = load<v128>(b + c, 32);
    let a3 = load<v128>(b + c, 48);
    let a4 = load<v128>(b + c, 64);
    let a5 = load<v128>(b + c, 80);
    let a6 = load<v128>(b + c, 96);
    let a7 = load<v128>(b + c, 112);
    const wc = W + c;
    let pi = li;
    let pv = lv;
    while (pi < liEnd) {
      const p = wc + <usize>load<u32>(pi) * rowBytes;
      const s = f32x4.splat(load<f32>(pv));
      a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
      a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
      a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
      a3 = f32x4.add(a3, f32x4.mul(s, load<v128>(p, 48)));
      a4 = f32x4.add(a4, f32x4.mul(s, load<v128>(p, 64)));
      a5 = f32x4.add(a5, f32x4.mul(s, load<v128>(p, 80)));
      a6 = f32x4.add(a6, f32x4.mul(s, load<v128>(p, 96)));
      a7 = f32x4.add(a7, f32x4.mul(s, load<v128>(p, 112)));
      pi += 4;
      pv += 4;
    }
    if (relu) {
      a0 = f32x4.max(a0, zero);
      a1 = f32x4.max(a1, zero);
      a2 = f32x4.max(a2, zero);
      a3 = f32x4.max(a3, zero);
      a4 = f32x4.max(a4, zero);
      a5 = f32x4.max(a5, zero);
      a6 = f32x4.max(a6, zero);
      a7 = f32x4.max(a7, zero);
    }
    store<v128>(dst + c, a0, 0);
    store<v128>(dst + c, a1, 16);
    store<v128>(dst + c, a2, 32);
    store<v128>(dst + c, a3, 48);
    store<v128>(dst + c, a4, 64);
    store<v128>(dst + c, a5, 80);
    store<v128>(dst + c, a6, 96);
    store<v128>(dst + c, a7, 112);
  }
  // Narrow tails (e.g. the 12-wide output layer): 4 registers, then 3, then 1 at a time.
  for (; c + 64 <= end; c += 64) {
    let a0 = load<v128>(b + c, 0);
    let a1 = load<v128>(b + c, 16);
    let a2 = load<v128>(b + c, 32);
    let a3 = load<v128>(b + c, 48);
    const wc = W + c;
    let pi = li;
    let pv = lv;
    while (pi < liEnd) {
      const p = wc + <usize>load<u32>(pi) * rowBytes;
      const s = f32x4.splat(load<f32>(pv));
      a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
      a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
      a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
      a3 = f32x4.add(a3, f32x4.mul(s, load<v128>(p, 48)));
      pi += 4;
      pv += 4;
    }
    if (relu) {
      a0 = f32x4.max(a0, zero);
      a1 = f32x4.max(a1, zero);
      a2 = f32x4.max(a2, zero);
      a3 = f32x4.max(a3, zero);
    }
    store<v128>(dst + c, a0, 0);
    store<v128>(dst + c, a1, 16);
    store<v128>(dst + c, a2, 32);
    store<v128>(dst + c, a3, 48);
  }
  if (c + 48 == end) {
    let a0 = load<v128>(b + c, 0);
    let a1 = load<v128>(b + c, 16);
    let a2 = load<v128>(b + c, 32);
    const wc = W + c;
    let pi = li;
    let pv = lv;
    while (pi < liEnd) {
      const p = wc + <usize>load<u32>(pi) * rowBytes;
      const s = f32x4.splat(load<f32>(pv));
      a0 = f32x4.add(a0, f32x4.mul(s, load<v128>(p, 0)));
      a1 = f32x4.add(a1, f32x4.mul(s, load<v128>(p, 16)));
      a2 = f32x4.add(a2, f32x4.mul(s, load<v128>(p, 32)));
      pi += 4;
      pv += 4;
    }
    if (relu) {
      a0 = f32x4.max(a0, zero);
      a1 = f32x4.max(a1, zero);
      a2 = f32x4.max(a2, zero);
    }
    store<v128>(dst + c, a0, 0);
    store<v128>(dst + c, a1, 16);
    store<v128>(dst + c, a2, 32);
    c += 48;
  }
  for (; c < end; c += 16) {
    let a0 = load<v128>(b + c);
    const wc = W + c;
    let pi = li;
    let pv = lv;
    while (pi < liEnd) {
      const p = wc + <usize>load<u32>(pi) * rowBytes;
      a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(pv)), load<v128>(p)));
      pi += 4;
      pv += 4;
    }
    if (relu) a0 = f32x4.max(a0, zero);
    store<v128>(dst + c, a0);
  }
}

/**
 * Forward pass of n rows. idx: i32 [n × nnz]; out: f32 [n × outDim]. When `record`, row r's
 * indices and hidden activations go to tape + r·rowStride; otherwise to a scratch row.
 */
export function forward(n: i32, idx: usize, out: usize, outDim: i32, tape: usize, record: i32): void {
  const nz = <usize>nnz;
  for (let r: i32 = 0; r < n; r++) {
    const row = record ? tape + <usize>r * rowStride : rowS;
    const src = idx + ((<usize>r * nz) << 2);
    for (let k: usize = 0; k < nz; k++) {
      const ix = load<i32>(src + (k << 2));
      store<i32>(row + (k << 2), ix);
      store<i32>(listIdx + (k << 2), ix);
      store<f32>(listVal + (k << 2), 1.0);
    }
    let cnt = nnz;
    for (let l: i32 = 0; l < L; l++) {
      const last = l == L - 1;
      const dst = last ? outS : row + tH(l);
      if (l > 0) cnt = buildList(row + tH(l - 1), tFanIn(l));
      accum(cnt, tW(l), tB(l), dst, tOutP(l), !last);
    }
    const o = out + ((<usize>r * <usize>outDim) << 2);
    for (let k: usize = 0; k < <usize>outDim; k++) store<f32>(o + (k << 2), load<f32>(outS + (k << 2)));
  }
}

/** dst[0..n) += src[0..n), n a multiple of 4. */
function addInto(dst: usize, src: usize, n: i32): void {
  const end = <usize>n << 2;
  for (let j: usize = 0; j < end; j += 16) {
    store<v128>(dst + j, f32x4.add(load<v128>(dst + j), load<v128>(src + j)));
  }
}

function zeroF(dst: usize, n: i32): void {
  memory.fill(dst, 0, <usize>n << 2);
}

// @ts-ignore: decorator
@inline function hsum(a: v128): f32 {
  return (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
}

/**
 * One hidden/output layer of the backward pass for one row, over the active inputs in the
 * list: N[i] = W[i,:]·D (the ReLU mask of the input is implied: inactive N[i] stay 0) and
 * G[i,:] += h_i · D. Four active rows per pass share each load of D.
 */
function backLayer(cnt: i32, W: usize, outP: i32, D: usize, N: usize): void {
  const rowBytes = <usize>outP << 2;
  const end = rowBytes;
  const gd = gDelta;
  let e: usize = 0;
  const n = <usize>cnt;
  for (; e + 4 <= n; e += 4) {
    const i0 = <usize>load<u32>(listIdx + (e << 2), 0);
    const i1 = <usize>load<u32>(listIdx + (e << 2), 4);
    const i2 = <usize>load<u32>(listIdx + (e << 2), 8);
    const i3 = <usize>load<u32>(listIdx + (e << 2), 12);
    const h0 = f32x4.splat(load<f32>(listVal + (e << 2), 0));
    const h1 = f32x4.splat(load<f32>(listVal + (e << 2), 4));
    const h2 = f32x4.splat(load<f32>(listVal + (e << 2), 8));
    const h3 = f32x4.splat(load<f32>(listVal + (e << 2), 12));
    const p0 = W + i0 * rowBytes;
    const p1 = W + i1 * rowBytes;
    const p2 = W + i2 * rowBytes;
    const p3 = W + i3 * rowBytes;
    let s0 = f32x4.splat(0);
    let s1 = f32x4.splat(0);
    let s2 = f32x4.splat(0);
    let s3 = f32x4.splat(0);
    for (let j: usize = 0; j < end; j += 16) {
      const d = load<v128>(D + j);
      s0 = f32x4.add(s0, f32x4.mul(load<v128>(p0 + j), d));
      s1 = f32x4.add(s1, f32x4.mul(load<v128>(p1 + j), d));
      s2 = f32x4.add(s2, f32x4.mul(load<v128>(p2 + j), d));
      s3 = f32x4.add(s3, f32x4.mul(load<v128>(p3 + j), d));
      const g0 = p0 + gd + j;
      const g1 = p1 + gd + j;
      const g2 = p2 + gd + j;
      const g3 = p3 + gd + j;
      store<v128>(g0, f32x4.add(load<v128>(g0), f32x4.mul(h0, d)));
      store<v128>(g1, f32x4.add(load<v128>(g1), f32x4.mul(h1, d)));
      store<v128>(g2, f32x4.add(load<v128>(g2), f32x4.mul(h2, d)));
      store<v128>(g3, f32x4.add(load<v128>(g3), f32x4.mul(h3, d)));
    }
    store<f32>(N + (i0 << 2), hsum(s0));
    store<f32>(N + (i1 << 2), hsum(s1));
    store<f32>(N + (i2 << 2), hsum(s2));
    store<f32>(N + (i3 << 2), hsum(s3));
  }
  for (; e < n; e++) {
    const i0 = <usize>load<u32>(listIdx + (e << 2));
    const h0 = f32x4.splat(load<f32>(listVal + (e << 2)));
    const p0 = W + i0 * rowBytes;
    let s0 = f32x4.splat(0);
    for (let j: usize = 0; j < end; j += 16) {
      const d = load<v128>(D + j);
      s0 = f32x4.add(s0, f32x4.mul(load<v128>(p0 + j), d));
      const g0 = p0 + gd + j;
      store<v128>(g0, f32x4.add(load<v128>(g0), f32x4.mul(h0, d)));
    }
    store<f32>(N + (i0 << 2), hsum(s0));
  }
}

/**
 * Accumulates gradients for n tape rows starting at address `tape`, given dL/dout
 * dOut: f32 [n × outDim]. Reads only the tape (no forward recomputation).
 */
export function backward(n: i32, tape: usize, dOut: usize, outDim: i32): void {
  const gd = gDelta;
  const outPL = tOutP(L - 1);
  for (let r: i32 = 0; r < n; r++) {
    const row = tape + <usize>r * rowStride;
    let D = bufA;
    let N = bufB;
    zeroF(D, outPL);
    const src = dOut + ((<usize>r * <usize>outDim) << 2);
    for (let k: usize = 0; k < <usize>outDim; k++) store<f32>(D + (k << 2), load<f32>(src + (k << 2)));
    for (let l: i32 = L - 1; l >= 0; l--) {
      const outP = tOutP(l);
      const W = tW(l);
      addInto(tB(l) + gd, D, outP);
      if (l == 0) {
        const rowBytes = <usize>outP << 2;
        for (let k: usize = 0; k < <usize>nnz; k++) {
          const ix = <usize>load<i32>(row + (k << 2));
          addInto(W + gd + ix * rowBytes, D, outP);
        }
      } else {
        const cnt = buildList(row + tH(l - 1), tFanIn(l));
        zeroF(N, tOutP(l - 1));
        backLayer(cnt, W, outP, D, N);
        const t = D;
        D = N;
        N = t;
      }
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
