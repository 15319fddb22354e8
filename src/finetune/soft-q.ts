import { tf } from '../core/backend.js';
import type { Rng } from '../core/rng.js';
import type { PolicyAdapter } from './adapter.js';
import { PrioritizedReplay } from '../softrl/replay.js';
import { munchausenBonus, softValue, tdLoss } from '../softrl/targets.js';
import type { ScoredRow } from './score.js';

export interface TokenDqnOptions {
  alpha: number; // Munchausen α (0 = SoftDQN)
  l0: number;
  bufferSize: number;
  replayBatch: number;
  polyak: number;
  huber: boolean;
  perAlpha: number;
}

/**
 * SoftDQN / Munchausen-DQN on token prefixes (eq. (SQ), (MQ)): the head's logits are
 * Q(s, ·) over the vocabulary (stop = EOS). The tree gives log P_B = 0, so inner rewards are
 * 0 and the exit reward is log R(Z) − shift (a constant shift, the mean log R of the first
 * batch, keeps values O(1); it changes no policy since every trajectory exits once).
 * Transitions keep the frozen LM's hidden state and base logits of s and s', so updates
 * never rerun the LM.
 */
export class TokenSoftQ {
  readonly tau: number;
  /** the Polyak-averaged copy of the adapter the targets come from */
  readonly target: PolicyAdapter;
  shift: number | null = null;
  private readonly replay: PrioritizedReplay;
  private readonly h: Float32Array;
  private readonly base: Float32Array;
  private readonly mask: Uint8Array;
  private readonly h2: Float32Array;
  private readonly base2: Float32Array;
  private readonly mask2: Uint8Array;
  private readonly act: Int32Array;
  private readonly rew: Float64Array;
  private readonly done: Uint8Array;

  constructor(
    readonly head: PolicyAdapter,
    private readonly d: number,
    private readonly V: number,
    readonly o: TokenDqnOptions,
  ) {
    this.tau = 1 / (1 - o.alpha);
    const N = o.bufferSize;
    this.replay = new PrioritizedReplay(N, o.perAlpha);
    this.h = new Float32Array(N * d);
    this.base = new Float32Array(N * V);
    this.mask = new Uint8Array(N * V);
    this.h2 = new Float32Array(N * d);
    this.base2 = new Float32Array(N * V);
    this.mask2 = new Uint8Array(N * V);
    this.act = new Int32Array(N);
    this.rew = new Float64Array(N);
    this.done = new Uint8Array(N);
    this.target = head.clone();
  }

  /** Adds every transition of the scored rows (new transitions enter at the maximum priority). */
  addRows(rows: ScoredRow[]): void {
    if (this.shift === null) this.shift = rows.reduce((s, r) => s + r.logR, 0) / rows.length;
    const { d, V } = this;
    for (const r of rows) {
      const n = r.nodes.length;
      for (let k = 0; k < n; k++) {
        const slot = this.replay.add();
        this.h.set(r.hidden.subarray(k * d, k * d + d), slot * d);
        this.base.set(r.baseLogits.subarray(k * V, k * V + V), slot * V);
        this.mask.set(r.mask.subarray(k * V, k * V + V), slot * V);
        this.act[slot] = r.actions[k];
        const exit = k === n - 1;
        this.done[slot] = exit ? 1 : 0;
        this.rew[slot] = exit ? r.logR - this.shift : 0; // log P_B = 0 on a tree
        if (!exit) {
          this.h2.set(r.hidden.subarray((k + 1) * d, (k + 2) * d), slot * d);
          this.base2.set(r.baseLogits.subarray((k + 1) * V, (k + 2) * V), slot * V);
          this.mask2.set(r.mask.subarray((k + 1) * V, (k + 2) * V), slot * V);
        }
      }
    }
  }

  /** One update on a replay batch; returns the loss and the gradients of the head's variables. */
  update(rng: Rng, vars: tf.Variable[]): { loss: number; grads: Map<tf.Variable, tf.Tensor> } {
    const { d, V, tau, o } = this;
    const n = Math.min(o.replayBatch, this.replay.size);
    const { slots } = this.replay.sample(n, rng, 0);
    const gather = <T extends Float32Array | Uint8Array>(src: T, w: number, make: (k: number) => T) => {
      const out = make(n * w);
      slots.forEach((s, i) => out.set(src.subarray(s * w, s * w + w) as never, i * w));
      return out;
    };
    const h = gather(this.h, d, (k) => new Float32Array(k));
    const base = gather(this.base, V, (k) => new Float32Array(k));
    const mask = gather(this.mask, V, (k) => new Uint8Array(k));
    const h2 = gather(this.h2, d, (k) => new Float32Array(k));
    const base2 = gather(this.base2, V, (k) => new Float32Array(k));
    const mask2 = gather(this.mask2, V, (k) => new Uint8Array(k));

    // targets from the Polyak-averaged head
    const qNext = this.target.logitsSync(h2, base2, n);
    const qNow = o.alpha > 0 ? this.target.logitsSync(h, base, n) : null;
    const y = new Float64Array(n);
    slots.forEach((s, i) => {
      y[i] = this.rew[s];
      if (!this.done[s]) y[i] += softValue(qNext, i * V, mask2, i * V, V, tau);
      if (qNow) y[i] += munchausenBonus(qNow, i * V, mask, i * V, V, this.act[s], tau, o.alpha, o.l0);
    });
    const oneHot = new Float32Array(n * V);
    slots.forEach((s, i) => (oneHot[i * V + this.act[s]] = 1));
    let loss = 0;
    const priority = new Float64Array(n);
    const { value, grads } = tf.variableGrads(() => {
      const q = tf.sum(tf.mul(this.head.logits(tf.tensor2d(h, [n, d]), tf.tensor2d(base, [n, V])), tf.tensor2d(oneHot, [n, V])), 1);
      const qa = q.dataSync();
      const g = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const td = tdLoss(qa[i] - y[i], o.huber);
        priority[i] = td.loss;
        loss += td.loss / n;
        g[i] = td.grad / n;
      }
      return tf.sum(tf.mul(q, tf.tensor1d(g))) as tf.Scalar;
    }, vars);
    value.dispose();
    this.replay.update(slots, priority);
    return { loss, grads: new Map(vars.map((v) => [v, grads[v.name]])) };
  }

  /** Buffer contents as named binary arrays (checkpoints). */
  exportBuffer(): Record<string, Uint8Array> {
    const st = this.replay.exportState();
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    return {
      'h.f32': bytes(this.h), 'base.f32': bytes(this.base), 'mask.u8': bytes(this.mask),
      'h2.f32': bytes(this.h2), 'base2.f32': bytes(this.base2), 'mask2.u8': bytes(this.mask2),
      'act.i32': bytes(this.act), 'rew.f64': bytes(this.rew), 'done.u8': bytes(this.done),
      'tree.f64': bytes(st.tree),
      'meta.json': new TextEncoder().encode(JSON.stringify({ next: st.next, size: st.size, maxPriority: st.maxPriority, shift: this.shift })),
    };
  }

  importBuffer(files: (name: string) => Buffer): void {
    const copy = (dst: ArrayBufferView, name: string) => new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(files(name));
    copy(this.h, 'h.f32'); copy(this.base, 'base.f32'); copy(this.mask, 'mask.u8');
    copy(this.h2, 'h2.f32'); copy(this.base2, 'base2.f32'); copy(this.mask2, 'mask2.u8');
    copy(this.act, 'act.i32'); copy(this.rew, 'rew.f64'); copy(this.done, 'done.u8');
    const tree = new Float64Array(this.replay.exportState().tree.length);
    copy(tree, 'tree.f64');
    const meta = JSON.parse(files('meta.json').toString('utf8'));
    this.replay.importState({ tree, next: meta.next, size: meta.size, maxPriority: meta.maxPriority });
    this.shift = meta.shift;
  }

  syncTarget(): void {
    this.target.polyakFrom(this.head, this.o.polyak);
  }

  /** Soft value at the root, τ·LSE(Q(s0, ·)/τ) + shift: the soft-RL estimate of log Z (eq. (M)), averaged over rows. */
  valueAtRoot(rows: ScoredRow[]): number {
    const { d, V, tau } = this;
    const h = new Float32Array(rows.length * d), base = new Float32Array(rows.length * V);
    rows.forEach((r, b) => {
      h.set(r.hidden.subarray(0, d), b * d);
      base.set(r.baseLogits.subarray(0, V), b * V);
    });
    const q = this.head.logitsSync(h, base, rows.length);
    let s = 0;
    rows.forEach((r, b) => (s += softValue(q, b * V, r.mask, 0, V, tau)));
    return s / rows.length + (this.shift ?? 0);
  }
}
