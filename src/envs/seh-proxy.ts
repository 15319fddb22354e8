/**
 * The pretrained sEH proxy (MPNNet_v2 of Bengio et al. 2021: lin0, 12 × NNConv(mean) + GRU,
 * Set2Set(3), lin3), forward only, in plain TypeScript: weights held as float32 (as shipped),
 * arithmetic in JS doubles. docs/benchmarks.md "Molecules (sEH)" gives the layer equations;
 * the two traps: the NNConv root weight is applied as x·Wᵀ (the benchmark's convention, not
 * torch_geometric 1.x's x·W), and the edge matrix Θ_e is read [in, out] row-major.
 */
import { loadSafetensors, type NamedArray } from '../core/safetensors.js';
import { UsageError } from '../core/errors.js';
import { SEH_DATA_DIR } from './seh-blocks.js';
import type { AtomRow, BondRow } from './seh-chem.js';

const DIM = 64;
const NUM_FEAT = 71;
const TYPE_IDX: Record<number, number> = { 1: 0, 6: 1, 7: 2, 8: 3, 9: 4 };
const R_MIN = 0.1,
  REWARD_NORM = 8;

const lrelu = (z: number) => (z >= 0 ? z : 0.01 * z);
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** R(x) = (max(proxy, 0.1)/8)^β (Dataset.r2r); log R returned to keep large β finite. */
export const sehLogReward = (proxy: number, beta: number): number => beta * Math.log(Math.max(proxy, R_MIN) / REWARD_NORM);

/** The 71 node features (chem.mpnn_feat with the benchmark's options) and directed edges. */
export function graphFromTables(
  atoms: AtomRow[],
  bonds: BondRow[],
): { x: Float64Array; n: number; src: Int32Array; dst: Int32Array; type: Int32Array } {
  // the empty state: one all-zero node flagged as stem, one self-loop with a zero attribute (type −1)
  if (atoms.length === 0) {
    const x = new Float64Array(NUM_FEAT);
    x[NUM_FEAT - 1] = 1;
    return { x, n: 1, src: Int32Array.of(0), dst: Int32Array.of(0), type: Int32Array.of(-1) };
  }
  const n = atoms.length;
  const x = new Float64Array(n * NUM_FEAT);
  let anyStem = false;
  atoms.forEach(([z, arom, hyb, nH, stem], i) => {
    const row = i * NUM_FEAT;
    x[row + (TYPE_IDX[z] ?? 5)] = 1;
    x[row + 9] = arom;
    x[row + 10] = hyb === 'SP' ? 1 : 0;
    x[row + 11] = hyb === 'SP2' ? 1 : 0;
    x[row + 12] = hyb === 'SP3' ? 1 : 0;
    x[row + 13] = nH;
    if (z >= 1 && z <= 56) x[row + 13 + z] = 1;
    if (stem) (x[row + 70] = 1), (anyStem = true);
  });
  if (!anyStem) x[70] = 1; // "if not len(stems): stems = [0]" in the original code
  if (bonds.length === 0) return { x, n, src: Int32Array.of(0), dst: Int32Array.of(0), type: Int32Array.of(-1) };
  const edges: [number, number, number][] = [];
  for (const [i, j, t] of bonds) edges.push([i, j, t], [j, i, t]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // coalesce order (only changes summation order)
  return {
    x,
    n,
    src: Int32Array.from(edges, (e) => e[0]),
    dst: Int32Array.from(edges, (e) => e[1]),
    type: Int32Array.from(edges, (e) => e[2]),
  };
}

export class SehProxy {
  private readonly w: Map<string, NamedArray>;
  private readonly w64 = new Map<string, Float64Array>();
  /** Θ for each edge attribute: the 4 bond one-hots, then the all-zero attribute of a self-loop. */
  private readonly theta: Float64Array[];

  constructor(file = SEH_DATA_DIR + 'seh_proxy.safetensors') {
    this.w = loadSafetensors(file).tensors;
    for (const k of [
      'mpnn.lin0.weight',
      'mpnn.conv.nn.2.weight',
      'mpnn.conv.lin.weight',
      'mpnn.gru.weight_ih_l0',
      'mpnn.set2set.lstm.weight_ih_l0',
      'mpnn.lin3.weight',
    ])
      if (!this.w.has(k)) throw new UsageError(`${file}: missing tensor ${k}`);
    // the edge network depends only on the bond type, so Θ_e takes 5 values: compute them once
    const W0 = this.t('mpnn.conv.nn.0.weight'),
      b0 = this.t('mpnn.conv.nn.0.bias');
    const W2 = this.t('mpnn.conv.nn.2.weight'),
      b2 = this.t('mpnn.conv.nn.2.bias');
    this.theta = [0, 1, 2, 3, -1].map((type) => {
      const hid = new Float64Array(128);
      for (let o = 0; o < 128; o++) hid[o] = lrelu((type >= 0 ? W0[o * 4 + type] : 0) + b0[o]);
      const th = new Float64Array(DIM * DIM);
      for (let o = 0; o < DIM * DIM; o++) {
        let s = b2[o];
        for (let k = 0; k < 128; k++) s += hid[k] * W2[o * 128 + k];
        th[o] = s;
      }
      return th;
    });
  }

  /** A tensor widened to float64 once (the float32 values unchanged; avoids a conversion per read). */
  private t(name: string): Float64Array {
    let d = this.w64.get(name);
    if (!d) {
      const a = this.w.get(name);
      if (!a) throw new UsageError(`sEH proxy: missing tensor ${name}`);
      this.w64.set(name, (d = Float64Array.from(a.data)));
    }
    return d;
  }

  /** y = x·Wᵀ + b for rows of x ([n, inDim]) with W [out, inDim] (torch layout). */
  private linear(x: Float64Array, n: number, inDim: number, W: Float64Array, b: Float64Array | null, outDim: number): Float64Array {
    const y = new Float64Array(n * outDim);
    for (let i = 0; i < n; i++)
      for (let o = 0; o < outDim; o++) {
        let s = b ? b[o] : 0;
        for (let k = 0; k < inDim; k++) s += x[i * inDim + k] * W[o * inDim + k];
        y[i * outDim + o] = s;
      }
    return y;
  }

  /** The proxy score of a molecule given its atom and bond tables (assembly atom order). */
  score(atoms: AtomRow[], bonds: BondRow[]): number {
    const g = graphFromTables(atoms, bonds);
    const N = g.n,
      E = g.src.length;
    let h = this.linear(g.x, N, NUM_FEAT, this.t('mpnn.lin0.weight'), this.t('mpnn.lin0.bias'), DIM).map(lrelu);
    const deg = new Float64Array(N);
    for (let e = 0; e < E; e++) deg[g.dst[e]]++;
    const root = this.t('mpnn.conv.lin.weight'),
      bconv = this.t('mpnn.conv.bias');
    const Wih = this.t('mpnn.gru.weight_ih_l0'),
      Whh = this.t('mpnn.gru.weight_hh_l0');
    const bih = this.t('mpnn.gru.bias_ih_l0'),
      bhh = this.t('mpnn.gru.bias_hh_l0');
    for (let step = 0; step < 12; step++) {
      // NNConv, mean aggregation: c_v = mean_{u→v} h_u·Θ_e + h_v·W_rootᵀ + b
      const agg = new Float64Array(N * DIM);
      const msg = new Float64Array(DIM);
      for (let e = 0; e < E; e++) {
        // edges are sorted by source: reuse h_u·Θ for consecutive edges of one type
        if (e === 0 || g.src[e] !== g.src[e - 1] || g.type[e] !== g.type[e - 1]) {
          const th = this.theta[g.type[e] >= 0 ? g.type[e] : 4],
            u = g.src[e] * DIM;
          msg.fill(0);
          for (let i = 0; i < DIM; i++) {
            const hu = h[u + i],
              row = i * DIM;
            for (let o = 0; o < DIM; o++) msg[o] += hu * th[row + o];
          }
        }
        const v = g.dst[e] * DIM;
        for (let o = 0; o < DIM; o++) agg[v + o] += msg[o];
      }
      const rootTerm = this.linear(h, N, DIM, root, bconv, DIM); // x·Wᵀ: the benchmark's convention
      const m = new Float64Array(N * DIM);
      for (let v = 0; v < N; v++) {
        const inv = deg[v] > 0 ? 1 / deg[v] : 0;
        for (let o = 0; o < DIM; o++) m[v * DIM + o] = lrelu(agg[v * DIM + o] * inv + rootTerm[v * DIM + o]);
      }
      // GRU cell, gates (r, z, n)
      const gi = this.linear(m, N, DIM, Wih, bih, 3 * DIM),
        gh = this.linear(h, N, DIM, Whh, bhh, 3 * DIM);
      const hn = new Float64Array(N * DIM);
      for (let v = 0; v < N; v++)
        for (let o = 0; o < DIM; o++) {
          const b = v * 3 * DIM;
          const r = sigmoid(gi[b + o] + gh[b + o]);
          const z = sigmoid(gi[b + DIM + o] + gh[b + DIM + o]);
          const nn = Math.tanh(gi[b + 2 * DIM + o] + r * gh[b + 2 * DIM + o]);
          hn[v * DIM + o] = (1 - z) * nn + z * h[v * DIM + o];
        }
      h = hn;
    }
    // Set2Set, 3 steps, LSTM gates (i, f, g, o), q* = [q, readout]
    const Lih = this.t('mpnn.set2set.lstm.weight_ih_l0'),
      Lhh = this.t('mpnn.set2set.lstm.weight_hh_l0');
    const lbi = this.t('mpnn.set2set.lstm.bias_ih_l0'),
      lbh = this.t('mpnn.set2set.lstm.bias_hh_l0');
    let qStar = new Float64Array(2 * DIM);
    let hl = new Float64Array(DIM),
      cl = new Float64Array(DIM);
    for (let s = 0; s < 3; s++) {
      const gate = new Float64Array(4 * DIM);
      for (let o = 0; o < 4 * DIM; o++) {
        let acc = lbi[o] + lbh[o];
        for (let k = 0; k < 2 * DIM; k++) acc += Lih[o * 2 * DIM + k] * qStar[k];
        for (let k = 0; k < DIM; k++) acc += Lhh[o * DIM + k] * hl[k];
        gate[o] = acc;
      }
      const c2 = new Float64Array(DIM),
        h2 = new Float64Array(DIM);
      for (let o = 0; o < DIM; o++) {
        c2[o] = sigmoid(gate[DIM + o]) * cl[o] + sigmoid(gate[o]) * Math.tanh(gate[2 * DIM + o]);
        h2[o] = sigmoid(gate[3 * DIM + o]) * Math.tanh(c2[o]);
      }
      cl = c2;
      hl = h2;
      const e = new Float64Array(N);
      let mx = -Infinity;
      for (let v = 0; v < N; v++) {
        let acc = 0;
        for (let o = 0; o < DIM; o++) acc += h[v * DIM + o] * hl[o];
        e[v] = acc;
        mx = Math.max(mx, acc);
      }
      let sum = 0;
      for (let v = 0; v < N; v++) sum += e[v] = Math.exp(e[v] - mx);
      const next = new Float64Array(2 * DIM);
      next.set(hl, 0);
      for (let v = 0; v < N; v++) {
        const a = e[v] / (sum + 1e-16);
        for (let o = 0; o < DIM; o++) next[DIM + o] += a * h[v * DIM + o];
      }
      qStar = next;
    }
    const W3 = this.t('mpnn.lin3.weight'),
      b3 = this.t('mpnn.lin3.bias');
    let y = b3[0];
    for (let k = 0; k < 2 * DIM; k++) y += W3[k] * qStar[k];
    return y;
  }
}
