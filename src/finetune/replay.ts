import type { Rng } from '../core/rng.js';
import type { ZSample } from './rollout.js';

interface Entry {
  z: ZSample;
  text: string;
  logR: number;
}

/**
 * Replay of latent sequences keyed by (X, Y): keeps the best `perKey` by log-reward, drops
 * duplicates, samples by softmax of log-reward, and can be seeded with gold rationales.
 */
export class RationaleReplay {
  private readonly store = new Map<string, Entry[]>();

  constructor(readonly perKey: number) {}

  add(key: string, z: ZSample, logR: number): void {
    const text = z.tokens.join(',');
    const list = this.store.get(key) ?? [];
    const same = list.find((e) => e.text === text);
    if (same)
      same.logR = logR; // rescored under the current reward temperature
    else list.push({ z, text, logR });
    list.sort((a, b) => b.logR - a.logR);
    if (list.length > this.perKey) list.length = this.perKey;
    this.store.set(key, list);
  }

  sample(key: string, rng: Rng): ZSample | null {
    const list = this.store.get(key);
    if (!list || list.length === 0) return null;
    const m = list[0].logR;
    const w = list.map((e) => Math.exp(e.logR - m));
    return list[rng.categorical(w)].z;
  }

  toJSON(): [string, { tokens: number[]; isAction: number[]; logR: number }[]][] {
    return [...this.store].map(([k, l]) => [k, l.map((e) => ({ tokens: e.z.tokens, isAction: Array.from(e.z.isAction), logR: e.logR }))]);
  }

  restore(data: ReturnType<RationaleReplay['toJSON']>): void {
    this.store.clear();
    for (const [k, l] of data)
      this.store.set(
        k,
        l.map((e) => ({ z: { tokens: e.tokens, isAction: Uint8Array.from(e.isAction) }, text: e.tokens.join(','), logR: e.logR })),
      );
  }
}
