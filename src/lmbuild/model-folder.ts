/**
 * Writes a model folder in the transformers.js layout (config.json, tokenizer files,
 * generation_config.json, onnx/model.onnx) for the project's own GPT models.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { ONNX_FILE, sha256 } from '../lm/folder.js';
import { type GptConfig, type GptWeights, validateConfig } from '../lm/gpt.js';
import { CharTokenizer } from '../lm/tokenizer.js';
import { type WriteOptions, buildGptOnnx, splitExternalData } from './onnx-writer.js';
import { encodeModel } from '../lm/onnx-graph.js';
import { type LlamaConfig, llamaHfConfig, validateLlamaConfig } from '../lm/llama.js';
import { type LlamaWriteOptions, buildLlamaOnnx } from './llama-writer.js';

export function hfConfigJson(c: GptConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: c.vocabSize,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.nEmbd,
    n_positions: c.nCtx,
    n_ctx: c.nCtx,
    layer_norm_epsilon: c.lnEps,
    // Not HF's tanh GELU: x·sigmoid(1.702x), see gpt.ts. Only the ONNX graph runs it.
    activation_function: 'gelu_sigmoid',
    tie_word_embeddings: false,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    use_cache: true,
    ...extra,
  };
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

export const EXTERNAL_DATA_FILE = 'model.onnx_data';

/** Writes a complete model folder. Returns the sha256 of onnx/model.onnx. With `externalData`, the weights go to onnx/model.onnx_data. */
export function writeModelFolder(
  dir: string,
  c: GptConfig,
  w: GptWeights,
  opts: WriteOptions & { tokenizer?: CharTokenizer; extraConfig?: Record<string, unknown>; externalData?: boolean } = {},
): string {
  validateConfig(c);
  const tok = opts.tokenizer ?? new CharTokenizer();
  if (tok.vocabSize !== c.vocabSize) throw new UsageError(`tokenizer has ${tok.vocabSize} tokens but the model ${c.vocabSize}`);
  mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  let model = buildGptOnnx(c, w, opts);
  if (opts.externalData) {
    const split = splitExternalData(model, EXTERNAL_DATA_FILE);
    model = split.model;
    writeAtomic(path.join(dir, 'onnx', EXTERNAL_DATA_FILE), split.data);
  }
  const bytes = encodeModel(model);
  writeAtomic(path.join(dir, ONNX_FILE), bytes);
  writeAtomic(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(c, opts.extraConfig), null, 2) + '\n');
  writeAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson()) + '\n');
  writeAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfigJson(c.nCtx), null, 2) + '\n');
  writeAtomic(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, pad_token_id: c.padTokenId }, null, 2) + '\n',
  );
  return sha256(bytes);
}

/** What a model folder needs of a tokenizer: its size and its two JSON files. */
export interface TokenizerFiles {
  readonly vocabSize: number;
  tokenizerJson(): object;
  tokenizerConfigJson(maxLength: number): object;
}

export interface LlamaFolderOptions extends LlamaWriteOptions {
  tokenizer: TokenizerFiles;
  /** weights in onnx/<graph>.onnx_data */
  externalData?: boolean;
}

/**
 * Writes a LLaMA-family folder as an Optimum export ships it: config.json, the tokenizer
 * files, generation_config.json and onnx/model.onnx (onnx/decoder_model_merged.onnx for the
 * merged variant). vocab_size may exceed the tokenizer (Qwen pads it). Returns the sha256 of the graph file.
 */
export function writeLlamaFolder(dir: string, c: LlamaConfig, w: GptWeights, o: LlamaFolderOptions): string {
  validateLlamaConfig(c);
  if (o.tokenizer.vocabSize > c.vocabSize)
    throw new UsageError(`tokenizer has ${o.tokenizer.vocabSize} tokens but the model only ${c.vocabSize}`);
  mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  const name = (o.merged ? 'decoder_model_merged' : 'model') + (o.fp16 ? '_fp16' : o.int8Head ? '_quantized' : '');
  let model = buildLlamaOnnx(c, w, o);
  if (o.externalData) {
    const split = splitExternalData(model, `${name}.onnx_data`);
    model = split.model;
    writeAtomic(path.join(dir, 'onnx', `${name}.onnx_data`), split.data);
  }
  const bytes = encodeModel(model);
  writeAtomic(path.join(dir, 'onnx', `${name}.onnx`), bytes);
  writeAtomic(path.join(dir, 'config.json'), JSON.stringify(llamaHfConfig(c), null, 2) + '\n');
  writeAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(o.tokenizer.tokenizerJson()) + '\n');
  writeAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(o.tokenizer.tokenizerConfigJson(c.nCtx), null, 2) + '\n');
  writeAtomic(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, pad_token_id: c.padTokenId }, null, 2) + '\n',
  );
  return sha256(bytes);
}
