import type { Rng } from '../core/rng.js';
import { PrioritizedReplay } from './replay.js';

export type FieldArray = Int32Array | Float32Array | Uint8Array;
/** A state as typed-array fields, e.g. { s: Int32Array } (MLP) or { h, base, mask } (LM adapter). */
export type StateFields = Record<string, FieldArray>;
export interface FieldSpec {
  width: number;
  type: 'i32' | 'f32' | 'u8';
}

/** n transitions (s, a, r, s', done), each state field gathered into [n × width]. */
export interface TransitionBatch {
  n: number;
  s: StateFields;
  /** next states; rows with done = 1 are not read */
  s2: StateFields;
  act: Int32Array;
  rew: Float64Array;
  done: Uint8Array;
}

const make = (type: FieldSpec['type'], n: number): FieldArray =>
  type === 'i32' ? new Int32Array(n) : type === 'f32' ? new Float32Array(n) : new Uint8Array(n);

export function emptyTransitions(n: number, fields: Record<string, FieldSpec>): TransitionBatch {
  const states = () => Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, make(f.type, n * f.width)]));
  return { n, s: states(), s2: states(), act: new Int32Array(n), rew: new Float64Array(n), done: new Uint8Array(n) };
}

/** dst row `j` ← src row `i` (rows of `w` values); short rows copy element by element, which beats a subarray view per row. */
export function copyRow(src: FieldArray, i: number, dst: FieldArray, j: number, w: number): void {
  if (w > 32) {
    dst.set(src.subarray(i * w, i * w + w), j * w);
    return;
  }
  const a = i * w,
    b = j * w;
  for (let k = 0; k < w; k++) dst[b + k] = src[a + k];
}

/**
 * The replay buffer of every soft Q-learner: transitions in typed arrays indexed by slot,
 * slots managed by the prioritized sum tree of replay.ts (ring insertion, proportional
 * sampling, priority updates). State fields are whatever the Q-function reads.
 */
export class TransitionBuffer {
  private readonly store: TransitionBatch;
  private readonly replay: PrioritizedReplay;
  /** the fields as a list, so the per-transition copies iterate an array, not Object.entries */
  private readonly list: { key: string; width: number }[];

  constructor(
    readonly capacity: number,
    perAlpha: number,
    readonly fields: Record<string, FieldSpec>,
  ) {
    this.store = emptyTransitions(capacity, fields);
    this.replay = new PrioritizedReplay(capacity, perAlpha);
    this.list = Object.entries(fields).map(([key, f]) => ({ key, width: f.width }));
  }

  get size(): number {
    return this.replay.size;
  }

  /**
   * Stores row `i` of `src` in the next slot (the oldest when full) with `priority` (the
   * maximum so far when undefined). A done transition's next state is not copied.
   */
  add(src: TransitionBatch, i: number, priority?: number): number {
    const slot = this.replay.add(priority);
    const st = this.store;
    for (const { key, width } of this.list) {
      copyRow(src.s[key], i, st.s[key], slot, width);
      if (!src.done[i]) copyRow(src.s2[key], i, st.s2[key], slot, width);
    }
    st.act[slot] = src.act[i];
    st.rew[slot] = src.rew[i];
    st.done[slot] = src.done[i];
    return slot;
  }

  /** n slots drawn proportionally to priority^α, with importance weights (N·P(i))^−β / max. */
  sample(n: number, rng: Rng, beta: number): { slots: Int32Array; weights: Float64Array } {
    return this.replay.sample(n, rng, beta);
  }

  gather(slots: Int32Array): TransitionBatch {
    const n = slots.length;
    const out = emptyTransitions(n, this.fields);
    const st = this.store;
    for (const { key, width } of this.list) {
      const s = st.s[key],
        s2 = st.s2[key],
        os = out.s[key],
        os2 = out.s2[key];
      for (let i = 0; i < n; i++) {
        copyRow(s, slots[i], os, i, width);
        copyRow(s2, slots[i], os2, i, width);
      }
    }
    for (let i = 0; i < n; i++) {
      const j = slots[i];
      out.act[i] = st.act[j];
      out.rew[i] = st.rew[j];
      out.done[i] = st.done[j];
    }
    return out;
  }

  updatePriorities(slots: Int32Array, priorities: ArrayLike<number>): void {
    this.replay.update(slots, priorities);
  }

  /** Contents as named binary arrays (checkpoints): `<field>.<type>`, `<field>2.<type>` for s', act, rew, done, the sum tree, and the ring's position. */
  exportState(): { files: Record<string, Uint8Array>; meta: { next: number; size: number; maxPriority: number } } {
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const st = this.replay.exportState();
    const files: Record<string, Uint8Array> = {};
    for (const [k, f] of Object.entries(this.fields)) {
      files[`${k}.${f.type}`] = bytes(this.store.s[k]);
      files[`${k}2.${f.type}`] = bytes(this.store.s2[k]);
    }
    Object.assign(files, {
      'act.i32': bytes(this.store.act),
      'rew.f64': bytes(this.store.rew),
      'done.u8': bytes(this.store.done),
      'tree.f64': bytes(st.tree),
    });
    return { files, meta: { next: st.next, size: st.size, maxPriority: st.maxPriority } };
  }

  importState(file: (name: string) => Uint8Array, meta: { next: number; size: number; maxPriority: number }): void {
    const copy = (dst: ArrayBufferView, name: string) => new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(file(name));
    for (const [k, f] of Object.entries(this.fields)) {
      copy(this.store.s[k], `${k}.${f.type}`);
      copy(this.store.s2[k], `${k}2.${f.type}`);
    }
    copy(this.store.act, 'act.i32');
    copy(this.store.rew, 'rew.f64');
    copy(this.store.done, 'done.u8');
    const tree = new Float64Array(this.replay.exportState().tree.length);
    copy(tree, 'tree.f64');
    this.replay.importState({ tree, ...meta });
  }
}
