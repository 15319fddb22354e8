/**
 * Small random-weight models for tests and benches: written to a temporary folder with the
 * ONNX writer, so every check runs the same code path as a shipped model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type GptConfig, type GptWeights, initWeights, perturbAll } from '../lm/gpt.js';
import { writeModelFolder } from './model-folder.js';
import { CharTokenizer } from '../lm/tokenizer.js';
import type { WriteOptions } from './onnx-writer.js';

export function tinyConfig(over: Partial<GptConfig> = {}): GptConfig {
  return { vocabSize: new CharTokenizer().vocabSize, nLayer: 2, nHead: 4, nEmbd: 32, nCtx: 96, lnEps: 1e-5, bosTokenId: 0, eosTokenId: 0, padTokenId: 0, ...over };
}

/**
 * Random weights scaled up (×`scale`, every bias/gain perturbed) so that the model's
 * outputs depend strongly on token order and position — a check that passes on
 * near-uniform outputs would prove little.
 */
export function randomWeights(c: GptConfig, seed: number, scale = 8): GptWeights {
  const w = initWeights(c, seed, scale);
  perturbAll(w, seed + 1, 0.1);
  return w;
}

export interface TempModel {
  dir: string;
  config: GptConfig;
  weights: GptWeights;
  hash: string;
  cleanup(): void;
}

export function writeTempModel(seed: number, over: Partial<GptConfig> = {}, opts: WriteOptions & { externalData?: boolean } = {}, scale = 8): TempModel {
  const config = tinyConfig(over);
  const weights = randomWeights(config, seed, scale);
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-lm-'));
  const dir = path.join(root, 'model');
  const hash = writeModelFolder(dir, config, weights, opts);
  return { dir, config, weights, hash, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
