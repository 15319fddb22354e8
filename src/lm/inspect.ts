/** `flowtune model inspect DIR`: facts about a model folder, every failure a one-line UsageError. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { type IoInfo, graphIo, initializerParamCount, readConfig, readOnnx } from './folder.js';
import { findLmHeadInput } from './surgery.js';
import { LmSession } from './session.js';

export interface InspectInfo {
  dir: string;
  modelType: string;
  layers: number;
  heads: number;
  hiddenSize: number;
  vocabSize: number;
  tokenizerVocab: number;
  contextLength: number;
  parameters: number;
  opset: number;
  inputs: IoInfo[];
  outputs: IoInfo[];
  kvCache: boolean;
  hiddenStates: 'output' | 'via graph surgery' | 'unavailable';
  eosTokenId: number;
}

export async function inspectModel(dir: string): Promise<InspectInfo> {
  const facts = readConfig(dir);
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
  const vocab = tokJson?.model?.vocab;
  if (!vocab) throw new UsageError(`${path.join(dir, 'tokenizer.json')}: no model.vocab`);
  const tokenizerVocab = (Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length) + (tokJson.added_tokens ?? []).filter((t: any) => !(t.content in vocab)).length;
  const { model } = readOnnx(dir);
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
  const s = await LmSession.open(dir, { needHidden: false });
  await s.release();
  return {
    dir,
    modelType: facts.modelType,
    layers: facts.nLayer,
    heads: facts.nHead,
    hiddenSize: facts.nEmbd,
    vocabSize: facts.vocabSize,
    tokenizerVocab,
    contextLength: facts.nCtx,
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
    if (kv.length) lines.push(`    ${kv[0].name.split('.')[0]}.{0..${kv.length / 2 - 1}}.key|value  ${kv[0].type} [${kv[0].dims.join(', ')}]`);
    return lines.join('\n');
  };
  return [
    `model          ${i.dir}`,
    `architecture   ${i.modelType}: ${i.layers} layers, ${i.heads} heads, hidden ${i.hiddenSize}, opset ${i.opset}`,
    `vocabulary     ${i.vocabSize} (tokenizer ${i.tokenizerVocab}), eos id ${i.eosTokenId}`,
    `context        ${i.contextLength}`,
    `parameters     ${i.parameters.toLocaleString('en-US')}`,
    `kv cache       ${i.kvCache ? 'yes' : 'no'}`,
    `hidden states  ${i.hiddenStates}`,
    `inputs\n${io(i.inputs)}`,
    `outputs\n${io(i.outputs)}`,
  ].join('\n');
}
