/**
 * The LoRA-style policy head of docs/design.md §4 over a frozen LM:
 *   logits_θ(s) = base_logits(h) + (α/r) · φ(h) B + b,   B ∈ R^{r×V} = 0 and b = 0 at init,
 * so training starts exactly at the base model. φ = whiten → Linear(d,256) → ReLU →
 * Linear(256,r) (`kind: 'mlp'`, default) or whiten → Linear(d,r) (`kind: 'linear'`).
 * Plus a scalar head log F(h) (log Z(X) at the initial state, log F(s) elsewhere):
 * whiten → Linear(d,64) → ReLU → Linear(64,1).
 *
 * Whitening (docs/design.md §4 "LM head notes": the raw LayerNorm output is badly conditioned)
 * is fitted once from rollout hidden states and then frozen and saved with the head:
 * ŵ(h) = (h − μ) L^{−T} with Σ + 0.01·mean-eigenvalue·I = L Lᵀ (Cholesky). This has identity
 * covariance like the PCA whitening of the prototype (the two differ by a rotation, which the
 * following Linear layer absorbs) and needs only O(d³/3) work, also for hub models' large d.
 * All matMuls use tfops.ts (explicit-transpose custom gradients, docs/design.md §3).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { UsageError } from '../core/errors.js';
import { type NamedArray, loadSafetensors, saveSafetensors } from '../lm/safetensors.js';
import type { PolicyHook } from '../lm/sampler.js';
import { addRowBias, linear, matMul2 } from '../lmbuild/tfops.js';
import { DenseStack, type DenseLayer } from './head-kernel.js';
import type { BaseModelId, PolicyAdapter } from './adapter.js';

export interface HeadConfig {
  kind: 'mlp' | 'linear';
  /** rank r of B (default 8) */
  rank: number;
  /** α in the (α/r) scale (default = 2r) */
  alpha: number;
  /** width of φ's hidden layer for kind 'mlp' (default 256) */
  width: number;
  /** width of the log-flow head (default 64) */
  flowWidth: number;
  hiddenSize: number;
  vocabSize: number;
}

export interface HeadManifest {
  format: 'flowtune-lm-head';
  version: 1;
  baseModel: string;
  baseModelSha256: string;
  kind: HeadConfig['kind'];
  rank: number;
  alpha: number;
  width: number;
  flowWidth: number;
  hiddenSize: number;
  vocabSize: number;
  whitened: boolean;
}

export function headConfig(over: Partial<HeadConfig> & Pick<HeadConfig, 'hiddenSize' | 'vocabSize'>): HeadConfig {
  const rank = over.rank ?? 8;
  const c: HeadConfig = { kind: 'mlp', rank, alpha: 2 * rank, width: 256, flowWidth: 64, ...over };
  if (c.kind !== 'mlp' && c.kind !== 'linear') throw new UsageError(`head.kind must be mlp or linear, got ${c.kind}`);
  for (const k of ['rank', 'width', 'flowWidth', 'hiddenSize', 'vocabSize'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new UsageError(`head.${k} must be a positive integer, got ${c[k]}`);
  if (!(c.alpha > 0)) throw new UsageError(`head.alpha must be positive, got ${c.alpha}`);
  return c;
}

type T2 = tf.Tensor2D;

export class LmHead implements PolicyAdapter {
  readonly config: HeadConfig;
  /** trainable, by name (policy part) */
  readonly params = new Map<string, tf.Variable>();
  /** trainable, by name (log-flow part) */
  readonly flowParams = new Map<string, tf.Variable>();
  private whitenW: tf.Tensor2D;
  private whitenB: tf.Tensor1D;
  private whitened = false;

  constructor(config: HeadConfig, seed: number) {
    this.config = config;
    const { hiddenSize: d, rank: r, width: w, flowWidth: fw, vocabSize: V } = config;
    const rng = new Rng(seed);
    // He-normal init from the project's Rng (tfjs initializers would not follow the seed).
    const he = (rows: number, cols: number) => {
      const a = new Float32Array(rows * cols);
      const std = Math.sqrt(2 / rows);
      for (let i = 0; i < a.length; i++) a[i] = rng.normal() * std;
      // tidy: a variable keeps its own reference to the initial values, whose tensor would stay alive
      return tf.tidy(() => tf.variable(tf.tensor2d(a, [rows, cols])));
    };
    const zeros = (...shape: number[]) => tf.tidy(() => tf.variable(tf.zeros(shape)));
    if (config.kind === 'mlp') {
      this.params.set('phi.0.weight', he(d, w)).set('phi.0.bias', zeros(w)).set('phi.1.weight', he(w, r)).set('phi.1.bias', zeros(r));
    } else {
      this.params.set('phi.0.weight', he(d, r));
    }
    this.params.set('B', zeros(r, V)).set('bias', zeros(V));
    this.flowParams
      .set('flow.0.weight', he(d, fw))
      .set('flow.0.bias', zeros(fw))
      .set('flow.1.weight', he(fw, 1))
      .set('flow.1.bias', zeros(1));
    this.whitenW = tf.eye(d) as tf.Tensor2D;
    this.whitenB = tf.zeros([d]) as tf.Tensor1D;
  }

  get isWhitened(): boolean {
    return this.whitened;
  }

  /** Fits the frozen whitening from hidden states [N×d] (e.g. ~64 random rollouts' states). */
  fitWhitening(hidden: Float32Array, reg = 0.01): void {
    const d = this.config.hiddenSize;
    const N = hidden.length / d;
    if (!Number.isInteger(N) || N < 2) throw new UsageError('fitWhitening: need at least 2 hidden states');
    const mu = new Float64Array(d);
    for (let n = 0; n < N; n++) for (let i = 0; i < d; i++) mu[i] += hidden[n * d + i] / N;
    const cov = new Float64Array(d * d);
    const row = new Float64Array(d);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < d; i++) row[i] = hidden[n * d + i] - mu[i];
      for (let i = 0; i < d; i++) {
        const ri = row[i] / N;
        if (ri === 0) continue;
        for (let j = 0; j <= i; j++) cov[i * d + j] += ri * row[j];
      }
    }
    let trace = 0;
    for (let i = 0; i < d; i++) trace += cov[i * d + i];
    // The data's own scale: mean square of the raw coordinates.
    let meanSq = 0;
    for (let k = 0; k < N * d; k++) meanSq += (hidden[k] * hidden[k]) / (N * d);
    const W = new Float32Array(d * d);
    if (!(trace / d > 1e-6 * meanSq)) {
      // Degenerate states (every rollout took the same path: the spread is float noise next to
      // the data's scale): a covariance fit would divide by ~0 (W ≈ 1e6·I, log Z in the 1e5s).
      // Fall back to the identity scaled to the data.
      const g = meanSq > 0 ? 1 / Math.sqrt(meanSq) : 1;
      for (let i = 0; i < d; i++) W[i * d + i] = g;
    } else {
      // 1% of the mean eigenvalue: a rank-deficient covariance (few distinct states) gets a
      // gain of at most 10·sqrt(d / trace), bounded relative to the data's own spread
      const eps = reg * (trace / d) + 1e-12;
      for (let i = 0; i < d; i++) cov[i * d + i] += eps;
      const L = cholesky(cov, d);
      const Linv = lowerInverse(L, d);
      // W = L^{-T}: W[i][j] = Linv[j][i]; bias = −μ W
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) W[i * d + j] = Linv[j * d + i];
    }
    const b = new Float32Array(d);
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += mu[i] * W[i * d + j];
      b[j] = -s;
    }
    this.setWhitening(W, b);
  }

  private setWhitening(W: Float32Array, b: Float32Array): void {
    const d = this.config.hiddenSize;
    this.whitenW.dispose();
    this.whitenB.dispose();
    this.whitenW = tf.tensor2d(W, [d, d]);
    this.whitenB = tf.tensor1d(b);
    this.whitened = true;
  }

  /** ŵ(h) [N,d] */
  whiten(h: T2): T2 {
    return linear(h, this.whitenW, this.whitenB);
  }

  /** φ(h) [N,r] */
  features(h: T2): T2 {
    const p = (n: string) => this.params.get(n)!;
    const x = this.whiten(h);
    if (this.config.kind === 'linear') return matMul2(x, p('phi.0.weight') as T2);
    const z = tf.relu(linear(x, p('phi.0.weight') as T2, p('phi.0.bias') as tf.Tensor1D)) as T2;
    return linear(z, p('phi.1.weight') as T2, p('phi.1.bias') as tf.Tensor1D);
  }

  /** logits_θ = base + (α/r)·φ(h)B + b, [N,V] (differentiable in the head's variables). */
  logits(h: T2, baseLogits: T2): T2 {
    const { alpha, rank } = this.config;
    const delta = tf.mul(matMul2(this.features(h), this.params.get('B')! as T2), alpha / rank) as T2;
    return addRowBias(tf.add(baseLogits, delta) as T2, this.params.get('bias')! as tf.Tensor1D);
  }

  /** log F(h) [N] */
  logFlow(h: T2): tf.Tensor1D {
    const p = (n: string) => this.flowParams.get(n)!;
    const z = tf.relu(linear(this.whiten(h), p('flow.0.weight') as T2, p('flow.0.bias') as tf.Tensor1D)) as T2;
    return tf.reshape(linear(z, p('flow.1.weight') as T2, p('flow.1.bias') as tf.Tensor1D), [h.shape[0]]);
  }

  /** Sets the log-flow output bias (e.g. log Z initialized from the first batch, docs/design.md §4). */
  setFlowBias(v: number): void {
    tf.tidy(() => this.flowParams.get('flow.1.bias')!.assign(tf.tensor1d([v])));
  }

  /** Plain-array version of `logits` for the sampler. */
  logitsSync(hidden: Float32Array, base: Float32Array, rows: number): Float32Array {
    const { hiddenSize: d, vocabSize: V } = this.config;
    return tf.tidy(() => this.logits(tf.tensor2d(hidden, [rows, d]), tf.tensor2d(base, [rows, V])).dataSync() as Float32Array);
  }

  /**
   * The head as a sampler policy hook, evaluated by the wasm-SIMD dense kernel (asm/dense.ts)
   * on a snapshot of the weights taken now (sampling runs with θ fixed; call policy() again
   * after each update). Per step the head is a few small products per row, where tfjs's
   * per-op dispatch would cost more than the LM step itself; α/r is folded into B.
   */
  policy(): PolicyHook {
    const { hiddenSize: d, vocabSize: V, rank: r, width, kind, alpha } = this.config;
    const k = kind === 'mlp' ? width : r;
    const snap = (t: tf.Tensor) => Float32Array.from(t.dataSync());
    // the frozen whitening runs as its own layer: folding it into A on every call cost
    // 4–15 ms (a fresh wasm matMul operator per new A), more than a sampled batch
    const layers: DenseLayer[] = [
      { W: snap(this.whitenW), b: snap(this.whitenB), din: d, dout: d, relu: false },
      {
        W: snap(this.params.get('phi.0.weight')!),
        b: kind === 'mlp' ? snap(this.params.get('phi.0.bias')!) : new Float32Array(k),
        din: d,
        dout: k,
        relu: kind === 'mlp',
      },
    ];
    if (kind === 'mlp') {
      layers.push({
        W: Float32Array.from(this.params.get('phi.1.weight')!.dataSync()),
        b: Float32Array.from(this.params.get('phi.1.bias')!.dataSync()),
        din: k,
        dout: r,
        relu: false,
      });
    }
    // output layer (α/r)·f·B + b, with the scale folded into B
    const Bm = Float32Array.from(this.params.get('B')!.dataSync(), (v) => v * (alpha / r));
    layers.push({ W: Bm, b: Float32Array.from(this.params.get('bias')!.dataSync()), din: r, dout: V, relu: false });
    const stack = new DenseStack(layers);
    return ({ hidden, logits }) => {
      const rows = hidden.length / d;
      const delta = stack.run(hidden, rows);
      // B = 0 and bias = 0 give delta = 0 exactly, so the base distribution is unchanged
      for (let i = 0; i < delta.length; i++) delta[i] += logits[i];
      return delta;
    };
  }

  trainableVariables(includeFlow = true): tf.Variable[] {
    return [...this.params.values(), ...(includeFlow ? this.flowParams.values() : [])];
  }

  policyVariables(): tf.Variable[] {
    return [...this.params.values()];
  }

  flowVariables(): tf.Variable[] {
    return [...this.flowParams.values()];
  }

  /** A copy with the same weights and the same frozen whitening (a soft-Q target network). */
  clone(): LmHead {
    const c = new LmHead(this.config, 0);
    for (const [n, v] of this.params) c.params.get(n)!.assign(v);
    for (const [n, v] of this.flowParams) c.flowParams.get(n)!.assign(v);
    c.setWhitening(Float32Array.from(this.whitenW.dataSync()), Float32Array.from(this.whitenB.dataSync()));
    c.whitened = this.whitened;
    return c;
  }

  /** this ← (1 − τ)·this + τ·source over the policy part (the log-flow part is no target). */
  polyakFrom(source: LmHead, tau: number): void {
    for (const [name, v] of source.params) {
      const t = this.params.get(name)!;
      tf.tidy(() => t.assign(tau === 1 ? v : tf.add(tf.mul(t, 1 - tau), tf.mul(v, tau))));
    }
  }

  /**
   * Loads the trainable variables saved in dir into this head. The frozen whitening is not
   * copied: a resumed trainer refits it from the same seed and rollouts, which gives the same
   * matrix (the resume test checks the end result).
   */
  restore(dir: string, expect: { sha256: string; vocabSize: number }): void {
    const { head } = LmHead.load(dir, expect);
    for (const [n, v] of head.params) this.params.get(n)!.assign(v);
    for (const [n, v] of head.flowParams) this.flowParams.get(n)!.assign(v);
    head.dispose();
  }

  /** Writes head.safetensors + head.json (manifest) into dir. */
  save(dir: string, base: BaseModelId): HeadManifest {
    mkdirSync(dir, { recursive: true });
    const t = new Map<string, NamedArray>();
    const add = (n: string, v: tf.Tensor) => t.set(n, { shape: [...v.shape], data: Float32Array.from(v.dataSync()) });
    for (const [n, v] of this.params) add(n, v);
    for (const [n, v] of this.flowParams) add(n, v);
    add('whiten.weight', this.whitenW);
    add('whiten.bias', this.whitenB);
    const c = this.config;
    const manifest: HeadManifest = {
      format: 'flowtune-lm-head',
      version: 1,
      baseModel: base.id,
      baseModelSha256: base.sha256,
      kind: c.kind,
      rank: c.rank,
      alpha: c.alpha,
      width: c.width,
      flowWidth: c.flowWidth,
      hiddenSize: c.hiddenSize,
      vocabSize: c.vocabSize,
      whitened: this.whitened,
    };
    saveSafetensors(path.join(dir, 'head.safetensors'), t, { format: 'flowtune-lm-head' });
    const tmp = path.join(dir, `head.json.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
    renameSync(tmp, path.join(dir, 'head.json'));
    return manifest;
  }

  /** Loads a saved head; with `expect`, refuses a head made for another base model. */
  static load(
    dir: string,
    expect?: { sha256?: string; vocabSize?: number; hiddenSize?: number },
  ): { head: LmHead; manifest: HeadManifest } {
    const mf = path.join(dir, 'head.json');
    if (!existsSync(mf)) throw new UsageError(`${dir}: missing head.json`);
    let m: HeadManifest;
    try {
      m = JSON.parse(readFileSync(mf, 'utf8'));
    } catch {
      throw new UsageError(`${mf}: not valid JSON`);
    }
    if (m.format !== 'flowtune-lm-head') throw new UsageError(`${mf}: not a flowtune head manifest`);
    if (expect?.sha256 && expect.sha256 !== m.baseModelSha256)
      throw new UsageError(
        `${dir}: head was trained on base model ${m.baseModel} (sha256 ${m.baseModelSha256.slice(0, 12)}…), not this one`,
      );
    if (expect?.vocabSize !== undefined && expect.vocabSize !== m.vocabSize)
      throw new UsageError(`${dir}: head vocabulary ${m.vocabSize} ≠ model ${expect.vocabSize}`);
    if (expect?.hiddenSize !== undefined && expect.hiddenSize !== m.hiddenSize)
      throw new UsageError(`${dir}: head hidden size ${m.hiddenSize} ≠ model ${expect.hiddenSize}`);
    const head = new LmHead(
      headConfig({
        kind: m.kind,
        rank: m.rank,
        alpha: m.alpha,
        width: m.width,
        flowWidth: m.flowWidth,
        hiddenSize: m.hiddenSize,
        vocabSize: m.vocabSize,
      }),
      0,
    );
    const { tensors } = loadSafetensors(path.join(dir, 'head.safetensors'));
    const take = (n: string, shape: number[]) => {
      const t = tensors.get(n);
      if (!t) throw new UsageError(`${dir}/head.safetensors: missing tensor ${n}`);
      if (t.shape.join('x') !== shape.join('x'))
        throw new UsageError(`${dir}/head.safetensors: ${n} has shape ${t.shape}, expected ${shape}`);
      return t.data;
    };
    for (const map of [head.params, head.flowParams])
      for (const [n, v] of map) tf.tidy(() => v.assign(tf.tensor(take(n, [...v.shape]), [...v.shape])));
    const d = m.hiddenSize;
    head.setWhitening(take('whiten.weight', [d, d]), take('whiten.bias', [d]));
    head.whitened = m.whitened;
    return { head, manifest: m };
  }

  async release(): Promise<void> {
    this.dispose();
  }

  dispose(): void {
    for (const v of this.trainableVariables()) v.dispose();
    this.whitenW.dispose();
    this.whitenB.dispose();
  }
}

function cholesky(a: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new UsageError('fitWhitening: covariance is not positive definite');
        L[i * n + i] = Math.sqrt(s);
      } else L[i * n + j] = s / L[j * n + j];
    }
  }
  return L;
}

function lowerInverse(L: Float64Array, n: number): Float64Array {
  const X = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= L[i * n + k] * X[k * n + c];
      X[i * n + c] = s / L[i * n + i];
    }
  }
  return X;
}
