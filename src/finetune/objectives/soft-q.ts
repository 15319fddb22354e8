import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { tf } from '../../core/backend.js';
import type { Rng } from '../../core/rng.js';
import type { BaseModelId, PolicyAdapter } from '../adapter.js';
import type { Checkpoint } from '../checkpoint.js';
import type { ScoredRow } from '../score.js';
import type { TrainConfig } from '../schema.js';
import { TokenSoftQ } from '../soft-q.js';
import type { LmObjective, ObjectiveStep } from './objective.js';

/**
 * SoftDQN (eq. (SQ)) and Munchausen-DQN (eq. (MQ)) on token prefixes: the adapter's logits
 * are Q(s, ·); each step adds the batch's transitions to the buffer, takes one TD update on
 * a prioritized replay batch against a Polyak target copy, and reports the soft value of
 * s_0 as log Z. The sampler draws softmax(Q/τ), τ = 1/(1 − α) (τ = 1 for SoftDQN).
 */
export class SoftQObjective implements LmObjective {
  readonly temperature: number;
  readonly prefixRewards = false;
  readonly policyLr: number | null;
  private readonly q: TokenSoftQ;

  constructor(adapter: PolicyAdapter, cfg: TrainConfig, dims: { d: number; V: number }, munchausen: boolean) {
    const o = cfg.dqn;
    this.q = new TokenSoftQ(adapter, dims.d, dims.V, {
      alpha: munchausen ? o.munchausenAlpha : 0,
      l0: o.l0,
      bufferSize: o.bufferSize,
      replayBatch: o.replayBatch,
      polyak: o.polyak,
      huber: o.huber,
      perAlpha: o.perAlpha,
      priorPerToken: o.priorPerToken,
    });
    this.temperature = this.q.tau;
    this.policyLr = o.lr;
  }

  paramGroups() {
    return [];
  }

  loss(rows: ScoredRow[], o: { rng: Rng; vars: tf.Variable[] }): ObjectiveStep {
    this.q.addRows(rows);
    const { loss, grads } = this.q.update(o.rng, o.vars);
    return { loss, grads, logZ: this.q.valueAtRoot(rows) };
  }

  afterStep(): void {
    this.q.syncTarget();
  }

  release(): void {
    this.q.target.dispose();
  }

  /** The target copy (target/) and the transition buffer (transitions/). */
  save(dir: string, base: BaseModelId): void {
    this.q.target.save(join(dir, 'target'), base);
    mkdirSync(join(dir, 'transitions'));
    for (const [name, bytes] of Object.entries(this.q.exportBuffer())) writeFileSync(join(dir, 'transitions', name), bytes);
  }

  restore(ck: Checkpoint, expect: { sha256: string; vocabSize: number }): void {
    this.q.target.restore(join(ck.dir, 'target'), expect);
    this.q.importBuffer((name) => ck.files.get(`transitions/${name}`)!);
  }
}
