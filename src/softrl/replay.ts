import type { Rng } from '../core/rng.js';

/**
 * Slot manager of a replay buffer (the caller keeps the items in its own typed arrays,
 * indexed by slot): ring insertion, sampling proportional to priority^α through a sum
 * tree, importance weights (N·P(i))^−β normalized by the batch maximum (Schaul et al.
 * 2016). α = 0 is the uniform buffer.
 */
export class PrioritizedReplay {
  private readonly tree: Float64Array; // sum tree over `leaves` leaves
  private readonly leaves: number;
  private next = 0;
  size = 0;
  private maxPriority = 1;

  constructor(
    readonly capacity: number,
    readonly alpha: number,
  ) {
    let leaves = 1;
    while (leaves < capacity) leaves *= 2;
    this.leaves = leaves;
    this.tree = new Float64Array(2 * leaves);
  }

  /**
   * Reserves the next slot (overwriting the oldest when full) with the given priority
   * (before the exponent α), or the maximum priority so far.
   */
  add(priority?: number): number {
    const slot = this.next;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
    if (priority === undefined) this.setPriority(slot, this.maxPriority);
    else {
      const p = Math.abs(priority) + 1e-6;
      this.maxPriority = Math.max(this.maxPriority, p);
      this.setPriority(slot, p);
    }
    return slot;
  }

  /** Stratified proportional sampling: one draw in each of n equal slices of the total mass. */
  sample(n: number, rng: Rng, beta: number): { slots: Int32Array; weights: Float64Array } {
    const slots = new Int32Array(n);
    const weights = new Float64Array(n);
    const total = this.tree[1];
    let maxW = 0;
    for (let i = 0; i < n; i++) {
      const slot = this.find(((i + rng.uniform()) / n) * total);
      slots[i] = slot;
      const p = this.tree[this.leaves + slot] / total;
      weights[i] = Math.pow(this.size * p, -beta);
      maxW = Math.max(maxW, weights[i]);
    }
    for (let i = 0; i < n; i++) weights[i] /= maxW;
    return { slots, weights };
  }

  /** New priorities (before the exponent α), e.g. absolute TD errors or per-item losses. */
  update(slots: Int32Array, priorities: ArrayLike<number>): void {
    for (let i = 0; i < slots.length; i++) {
      const p = Math.abs(priorities[i]) + 1e-6;
      this.maxPriority = Math.max(this.maxPriority, p);
      this.setPriority(slots[i], p);
    }
  }

  /** The whole state (for checkpoints). */
  exportState(): { tree: Float64Array; next: number; size: number; maxPriority: number } {
    return { tree: this.tree.slice(), next: this.next, size: this.size, maxPriority: this.maxPriority };
  }

  importState(s: { tree: Float64Array; next: number; size: number; maxPriority: number }): void {
    this.tree.set(s.tree);
    this.next = s.next;
    this.size = s.size;
    this.maxPriority = s.maxPriority;
  }

  private setPriority(slot: number, priority: number): void {
    let i = this.leaves + slot;
    const delta = Math.pow(priority, this.alpha) - this.tree[i];
    for (; i >= 1; i >>= 1) this.tree[i] += delta;
  }

  private find(mass: number): number {
    let i = 1;
    while (i < this.leaves) {
      const left = 2 * i;
      if (mass < this.tree[left] || this.tree[left + 1] === 0) i = left;
      else {
        mass -= this.tree[left];
        i = left + 1;
      }
    }
    return Math.min(i - this.leaves, this.size - 1);
  }
}
