/** `flowtune model inspect DIR`: facts about a model folder, every failure a one-line UsageError. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { type Dtype, type IoInfo, graphIo, initializerParamCount, modelFamily, readConfig, readOnnx } from './folder.js';
import { findLmHeadInput } from './surgery.js';
import { LmSession } from './session.js';
import { type PositionHandling, positionHandling } from './layout.js';
import { tokenizerJsonFacts } from './tokenizer.js';

export interface InspectInfo {
  dir: string;
  modelType: string;
  family: 'gpt2' | 'llama';
  layers: number;
  heads: number;
  /** key/value heads (fewer than heads: grouped-query attention) */
  kvHeads: number;
  hiddenSize: number;
  vocabSize: number;
  tokenizerVocab: number;
  /** special tokens of the tokenizer (never sampled into Z) */
  specialTokens: number;
  contextLength: number;
  positions: PositionHandling;
  /** graph, external data, tokenizer and config files read (relative to dir) */
  files: string[];
  parameters: number;
  opset: number;
  inputs: IoInfo[];
  outputs: IoInfo[];
  kvCache: boolean;
  hiddenStates: 'output' | 'via graph surgery' | 'unavailable';
  eosTokenId: number;
}

export async function inspectModel(dir: string, dtype: Dtype = 'fp32'): Promise<InspectInfo> {
  const facts = readConfig(dir);
  const family = modelFamily(facts);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    const file = path.join(dir, f);
    if (!existsSync(file)) throw new UsageError(`${dir}: missing ${f}`);
    try {
      JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
    }
  }
  const tokJson = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  if (!tokJson?.model?.vocab) throw new UsageError(`${path.join(dir, 'tokenizer.json')}: no model.vocab`);
  const tf = tokenizerJsonFacts(tokJson);
  if (tf.size > facts.vocabSize)
    throw new UsageError(
      `${dir}: the tokenizer has ${tf.size} ids but the model's vocab_size is ${facts.vocabSize} (tokenizer and model do not match)`,
    );
  const { model } = readOnnx(dir, dtype);
  const io = graphIo(model);
  let hiddenStates: InspectInfo['hiddenStates'] = 'unavailable';
  if (io.outputs.some((o) => o.name === 'last_hidden_state')) hiddenStates = 'output';
  else {
    try {
      findLmHeadInput(model);
      hiddenStates = 'via graph surgery';
    } catch {
      /* stays unavailable */
    }
  }
  // Loading the session is the real check that the graph is runnable.
  const s = await LmSession.open(dir, { needHidden: false, dtype });
  const files = [...s.files, 'config.json', 'tokenizer.json', 'tokenizer_config.json'];
  await s.release();
  return {
    dir,
    modelType: facts.modelType,
    family,
    layers: facts.nLayer,
    heads: facts.nHead,
    kvHeads: facts.nKvHead,
    hiddenSize: facts.nEmbd,
    vocabSize: facts.vocabSize,
    tokenizerVocab: tf.size,
    specialTokens: tf.specialIds.length,
    contextLength: facts.nCtx,
    positions: positionHandling(model),
    files,
    parameters: initializerParamCount(model),
    opset: Number(model.opsetImport?.find((o) => !o.domain)?.version ?? 0),
    inputs: io.inputs,
    outputs: io.outputs,
    kvCache: io.inputs.some((i) => i.name.startsWith('past_key_values.')) && io.outputs.some((o) => o.name.startsWith('present.')),
    hiddenStates,
    eosTokenId: facts.eosTokenId,
  };
}

export function formatInspect(i: InspectInfo): string {
  const io = (xs: IoInfo[]) => {
    const kv = xs.filter((x) => /^(past_key_values|present)\./.test(x.name));
    const rest = xs.filter((x) => !/^(past_key_values|present)\./.test(x.name));
    const lines = rest.map((x) => `    ${x.name}  ${x.type} [${x.dims.join(', ')}]`);
    if (kv.length)
      lines.push(`    ${kv[0].name.split('.')[0]}.{0..${kv.length / 2 - 1}}.key|value  ${kv[0].type} [${kv[0].dims.join(', ')}]`);
    return lines.join('\n');
  };
  return [
    `model          ${i.dir}`,
    `architecture   ${i.modelType} (${i.family} family): ${i.layers} layers, ${i.heads} heads, hidden ${i.hiddenSize}, opset ${i.opset}`,
    `attention      ${i.heads} query heads, ${i.kvHeads} key/value heads${i.kvHeads < i.heads ? ` (grouped-query, ${i.heads / i.kvHeads} per KV head)` : ''}`,
    `vocabulary     ${i.vocabSize} (tokenizer ${i.tokenizerVocab}, ${i.specialTokens} special${i.vocabSize > i.tokenizerVocab ? `; ids ${i.tokenizerVocab}..${i.vocabSize - 1} are padding, never sampled` : ''}), eos id ${i.eosTokenId}`,
    `context        ${i.contextLength}`,
    `positions      ${POSITION_TEXT[i.positions]}`,
    `parameters     ${i.parameters.toLocaleString('en-US')} (shared tensors counted once)`,
    `kv cache       ${i.kvCache ? 'yes' : 'no'}`,
    `hidden states  ${i.hiddenStates}`,
    `inputs\n${io(i.inputs)}`,
    `outputs\n${io(i.outputs)}`,
    `files          ${i.files.join(', ')}`,
  ].join('\n');
}

const POSITION_TEXT: Record<PositionHandling, string> = {
  position_ids: 'position_ids input (fed cumsum(mask) − 1: padding-safe)',
  mask: 'computed from attention_mask inside the graph (padding-safe)',
  absolute: 'counted from the past length (no position_ids): rows are run without padding',
};
