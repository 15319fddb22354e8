import { tf } from '../core/backend.js';
import type { Rng } from '../core/rng.js';
import type { PolicyAdapter } from './adapter.js';
import { SoftQLearner, type SoftQOptions } from '../softrl/soft-q.js';
import { softValue } from '../softrl/targets.js';
import { emptyTransitions, type FieldSpec, type StateFields } from '../softrl/transitions.js';
import type { ScoredRow } from './score.js';

/**
 * SoftDQN / Munchausen-DQN on token prefixes (eq. (SQ), (MQ)) with the shared SoftQLearner of
 * src/softrl: the adapter's logits are Q(s, ·) over the vocabulary (stop included). The tree
 * gives log P_B = 0, so inner rewards are 0 and the exit reward is log R(Z) − shift (a
 * constant shift, the mean exit reward of the first batch, keeps values O(1); it changes no
 * policy since every trajectory exits once). With `priorPerToken` each edge also earns the
 * prior of the tokens it writes and the exit only the rest of log R (ScoredRow.edgeLogR): the
 * same trajectory reward, but Q = log π̃ then already satisfies the inner targets. A state is
 * what the frozen LM recorded there — hidden state, base logits, action mask — so updates
 * never rerun the LM. An adapter inside the
 * network (LoRA, `prefixLogits`) changes what the network computes along the whole prefix, so
 * there a state is its tokens X z_1..j (and action mask) and Q(s, ·) is the adapted model's
 * logits after them minus the frozen model's masked log-normalizer at s (ScoredRow.baseLogNorm):
 * every update reruns the adapted model on the replay batch. The normalizer is a constant per
 * state, so it changes no policy; without it Q starts at the raw logits, whose soft values
 * (≈ −50 on models/arith-char) are far from the O(1) values log F(s) − shift: the adapter spent
 * its steps shifting every logit and the posterior check missed (TV 0.22). With it LoRA starts
 * where the head does, Q = log π̃ (head.ts: base + Δ with base = log π̃).
 */
export class TokenSoftQ {
  readonly tau: number;
  /** the Polyak-averaged copy of the adapter the targets come from */
  readonly target: PolicyAdapter;
  shift: number | null = null;
  private readonly learner: SoftQLearner;
  private readonly fields: Record<string, FieldSpec>;
  /** the variables `update` differentiates, and their gradients from the last update */
  private vars: tf.Variable[] = [];
  private grads = new Map<tf.Variable, tf.Tensor>();

  constructor(
    readonly head: PolicyAdapter,
    private readonly d: number,
    private readonly V: number,
    readonly o: SoftQOptions & { replayBatch: number; priorPerToken?: boolean },
  ) {
    this.target = head.clone();
    this.fields = head.prefixLogits
      ? {
          tok: { width: head.prefixWidth!, type: 'i32' },
          len: { width: 1, type: 'i32' },
          norm: { width: 1, type: 'f32' },
          mask: { width: V, type: 'u8' },
        }
      : { h: { width: d, type: 'f32' }, base: { width: V, type: 'f32' }, mask: { width: V, type: 'u8' } };
    this.learner = new SoftQLearner(
      {
        targetQ: (s, n) => ({ q: this.qSync(this.target, s, n), width: V, mask: s.mask, A: V }),
        backward: (b, dQ) => this.backward(b.s, b.act, b.n, dQ),
        polyak: (tau) => this.target.polyakFrom(this.head, tau),
      },
      this.fields,
      o,
    );
    this.tau = this.learner.tau;
  }

  /** Adds every transition of the scored rows (new transitions enter at the maximum priority). */
  addRows(rows: ScoredRow[]): void {
    // edge k's reward: log P_B = 0 on a tree, so inner edges earn 0 and the exit all of log R;
    // with priorPerToken each edge earns its share of log R (ScoredRow.edgeLogR)
    const reward = (r: ScoredRow, k: number) => (this.o.priorPerToken ? r.edgeLogR[k] : k === r.nodes.length - 1 ? r.logR : 0);
    if (this.shift === null) this.shift = rows.reduce((s, r) => s + reward(r, r.nodes.length - 1), 0) / rows.length;
    const { d, V } = this;
    for (const r of rows) {
      const n = r.nodes.length;
      const tr = emptyTransitions(n, this.fields);
      // s' of node k is node k + 1; the exit (last node) has none
      if (this.head.prefixLogits) {
        const W = this.head.prefixWidth!;
        const prefix = (k: number) => [...r.tokens.x, ...r.tokens.z.slice(0, r.nodes[k])];
        for (let k = 0; k < n; k++) {
          const p = prefix(k);
          if (p.length > W) throw new Error(`soft-Q state of ${p.length} tokens exceeds ${W}`);
          tr.s.tok.set(p, k * W);
          tr.s.len[k] = p.length;
          tr.s.norm[k] = r.baseLogNorm[k];
          if (k > 0) {
            tr.s2.tok.set(p, (k - 1) * W);
            tr.s2.len[k - 1] = p.length;
            tr.s2.norm[k - 1] = r.baseLogNorm[k];
          }
        }
      } else {
        tr.s.h.set(r.hidden.subarray(0, n * d));
        tr.s.base.set(r.baseLogits.subarray(0, n * V));
        tr.s2.h.set(r.hidden.subarray(d, n * d));
        tr.s2.base.set(r.baseLogits.subarray(V, n * V));
      }
      tr.s.mask.set(r.mask.subarray(0, n * V));
      tr.s2.mask.set(r.mask.subarray(V, n * V));
      for (let k = 0; k < n; k++) {
        tr.act[k] = r.actions[k];
        const exit = k === n - 1;
        tr.done[k] = exit ? 1 : 0;
        tr.rew[k] = reward(r, k) - (exit ? this.shift : 0);
        this.learner.buffer.add(tr, k);
      }
    }
  }

  /** The token prefixes of n stored states (prefix mode). */
  private prefixes(s: StateFields, n: number): number[][] {
    const W = this.head.prefixWidth!;
    return Array.from({ length: n }, (_, i) => Array.from(s.tok.subarray(i * W, i * W + s.len[i])));
  }

  /** Q(s, ·) [n×V] of `model` at n stored states, outside any tape. */
  private qSync(model: PolicyAdapter, s: StateFields, n: number): Float32Array {
    if (!model.prefixLogits) return model.logitsSync(s.h as Float32Array, s.base as Float32Array, n);
    return tf.tidy(() => this.normalized(model.prefixLogits!(this.prefixes(s, n)), s.norm as Float32Array, n).dataSync() as Float32Array);
  }

  /** Prefix mode: raw adapted logits [n×V] minus each state's frozen log-normalizer, so Q starts at log π̃. */
  private normalized(logits: tf.Tensor2D, norm: Float32Array, n: number): tf.Tensor2D {
    return tf.sub(logits, tf.tensor2d(norm.subarray(0, n), [n, 1]));
  }

  /** Q(s, ·) [n×V] of the online adapter, differentiable (call inside a tape). */
  private q(s: StateFields, n: number): tf.Tensor2D {
    const { d, V } = this;
    if (this.head.prefixLogits) return this.normalized(this.head.prefixLogits(this.prefixes(s, n)), s.norm as Float32Array, n);
    return this.head.logits(tf.tensor2d(s.h as Float32Array, [n, d]), tf.tensor2d(s.base as Float32Array, [n, V]));
  }

  /** One update on a replay batch; returns the loss and the gradients of `vars`. */
  update(rng: Rng, vars: tf.Variable[]): { loss: number; grads: Map<tf.Variable, tf.Tensor> } {
    this.vars = vars;
    const loss = this.learner.update(Math.min(this.o.replayBatch, this.learner.buffer.size), rng);
    return { loss, grads: this.grads };
  }

  /** Q(s, a) through the adapter inside one gradient tape; dL/dQ from the learner. */
  private backward(s: StateFields, act: Int32Array, n: number, dQ: (qa: ArrayLike<number>) => Float64Array): void {
    const { V } = this;
    const oneHot = new Float32Array(n * V);
    act.forEach((a, i) => (oneHot[i * V + a] = 1));
    const { value, grads } = tf.variableGrads(() => {
      const q = tf.sum(tf.mul(this.q(s, n), tf.tensor2d(oneHot, [n, V])), 1);
      const g = Float32Array.from(dQ(q.dataSync()));
      return tf.sum(tf.mul(q, tf.tensor1d(g))) as tf.Scalar;
    }, this.vars);
    value.dispose();
    this.grads = new Map(this.vars.map((v) => [v, grads[v.name]]));
  }

  syncTarget(): void {
    this.learner.syncTarget();
  }

  /** Soft value at the root, τ·LSE(Q(s0, ·)/τ) + shift: the soft-RL estimate of log Z (eq. (M)), averaged over rows. */
  valueAtRoot(rows: ScoredRow[]): number {
    const { d, V, tau } = this;
    let q: Float32Array;
    if (this.head.prefixLogits) {
      const prefixes = rows.map((r) => [...r.tokens.x, ...r.tokens.z.slice(0, r.nodes[0])]);
      const norm = Float32Array.from(rows, (r) => r.baseLogNorm[0]);
      q = tf.tidy(() => this.normalized(this.head.prefixLogits!(prefixes), norm, rows.length).dataSync() as Float32Array);
    } else {
      const h = new Float32Array(rows.length * d),
        base = new Float32Array(rows.length * V);
      rows.forEach((r, b) => {
        h.set(r.hidden.subarray(0, d), b * d);
        base.set(r.baseLogits.subarray(0, V), b * V);
      });
      q = this.head.logitsSync(h, base, rows.length);
    }
    let s = 0;
    rows.forEach((r, b) => (s += softValue(q, b * V, r.mask, 0, V, tau)));
    return s / rows.length + (this.shift ?? 0);
  }

  /** Buffer contents as named binary arrays (checkpoints). */
  exportBuffer(): Record<string, Uint8Array> {
    const { files, meta } = this.learner.buffer.exportState();
    return { ...files, 'meta.json': new TextEncoder().encode(JSON.stringify({ ...meta, shift: this.shift })) };
  }

  importBuffer(files: (name: string) => Buffer): void {
    const meta = JSON.parse(files('meta.json').toString('utf8'));
    this.learner.buffer.importState(files, { next: meta.next, size: meta.size, maxPriority: meta.maxPriority });
    this.shift = meta.shift;
  }
}
