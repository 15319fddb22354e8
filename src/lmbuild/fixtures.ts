/**
 * Small random-weight models for tests and benches: written to a temporary folder with the
 * ONNX writer, so every check runs the same code path as a shipped model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type GptConfig, type GptWeights, initWeights, perturbAll } from '../lm/gpt.js';
import { writeLlamaFolder, writeModelFolder } from './model-folder.js';
import { Rng } from '../core/rng.js';
import { makeQuery, rationale } from '../text/arithmetic.js';
import { type LlamaConfig, initLlamaWeights } from '../lm/llama.js';
import { ByteBpe } from './bpe.js';
import type { LlamaWriteOptions } from './llama-writer.js';
import { CharTokenizer } from '../lm/tokenizer.js';
import type { WriteOptions } from './onnx-writer.js';

export function tinyConfig(over: Partial<GptConfig> = {}): GptConfig {
  return {
    vocabSize: new CharTokenizer().vocabSize,
    nLayer: 2,
    nHead: 4,
    nEmbd: 32,
    nCtx: 96,
    lnEps: 1e-5,
    bosTokenId: 0,
    eosTokenId: 0,
    padTokenId: 0,
    ...over,
  };
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

export function writeTempModel(
  seed: number,
  over: Partial<GptConfig> = {},
  opts: WriteOptions & { externalData?: boolean } = {},
  scale = 8,
): TempModel {
  const config = tinyConfig(over);
  const weights = randomWeights(config, seed, scale);
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-lm-'));
  const dir = path.join(root, 'model');
  const hash = writeModelFolder(dir, config, weights, opts);
  return { dir, config, weights, hash, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** A small text for training fixture BPE tokenizers: arithmetic lines (so " =" becomes a token) and English. */
export function fixtureCorpus(n = 200, seed = 0): string[] {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = 2 + rng.int(3);
    const operands = Array.from({ length: k }, () => rng.int(10));
    const ops = Array.from({ length: k - 1 }, () => (rng.uniform() < 0.5 ? '+' : '-'));
    const r = rationale(operands, ops);
    out.push(`${makeQuery(operands, ops)} ${r.text}. The answer is ${r.final}.`);
  }
  out.push('The quick brown fox jumps over the lazy dog.', 'She questions the suspension and the timing.', 'Many more go unreported.');
  return out;
}

export function tinyLlamaConfig(vocabSize: number, over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    modelType: 'llama',
    vocabSize,
    nLayer: 2,
    nHead: 4,
    nKvHead: 2,
    nEmbd: 32,
    headDim: 8,
    intermediateSize: 64,
    nCtx: 128,
    rmsEps: 1e-6,
    ropeTheta: 10000,
    attentionBias: false,
    tieWordEmbeddings: false,
    bosTokenId: vocabSize - 1,
    eosTokenId: vocabSize - 2,
    padTokenId: vocabSize - 2,
    ...over,
  };
}

export interface TempLlama {
  dir: string;
  config: LlamaConfig;
  weights: GptWeights;
  tokenizer: ByteBpe;
  cleanup(): void;
}

/**
 * A random LLaMA-family folder with a byte-level BPE tokenizer (60 merges over fixtureCorpus;
 * specials <|endoftext|> = EOS then <|begin_of_text|> = BOS, added in front when `bos`).
 * `padVocab` extra ids beyond the tokenizer imitate Qwen's padded vocab_size.
 */
export function writeTempLlama(
  seed: number,
  o: LlamaWriteOptions & { bos?: boolean; padVocab?: number; std?: number; externalData?: boolean; over?: Partial<LlamaConfig> } = {},
): TempLlama {
  const tokenizer = ByteBpe.train(fixtureCorpus(), {
    merges: 60,
    specials: ['<|endoftext|>', '<|begin_of_text|>'],
    bosToken: '<|begin_of_text|>',
    addBos: o.bos ?? false,
  });
  const V = tokenizer.vocabSize;
  const config = tinyLlamaConfig(V + (o.padVocab ?? 0), { bosTokenId: V - 1, eosTokenId: V - 2, padTokenId: V - 2, ...o.over });
  const weights = initLlamaWeights(config, seed, o.std ?? 0.3);
  const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-llama-'));
  const dir = path.join(root, 'model');
  writeLlamaFolder(dir, config, weights, { ...o, tokenizer });
  return { dir, config, weights, tokenizer, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
