import type { MlpSpec, SparseMlp } from './mlp.js';
import { usage } from '../core/errors.js';

export const ENGINES = ['fused', 'tfjs'] as const;
export type Engine = (typeof ENGINES)[number];

/**
 * The benchmark policy network by engine name: `fused` is the wasm-SIMD kernel (fast path
 * for small MLPs), `tfjs` the general engine on the selected tensor backend.
 */
export async function createNet(engine: Engine, spec: MlpSpec, seed: number): Promise<SparseMlp> {
  usage((ENGINES as readonly string[]).includes(engine), `engine must be one of ${ENGINES.join(', ')} (got ${engine})`);
  if (engine === 'fused') {
    const { FusedMlp } = await import('./fused-mlp.js');
    return FusedMlp.create(spec, seed);
  }
  const { selectBackend } = await import('../core/backend.js');
  await selectBackend();
  const { TfjsMlp } = await import('./tfjs-mlp.js');
  return TfjsMlp.create(spec, seed);
}
