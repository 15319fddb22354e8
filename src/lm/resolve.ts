/**
 * A model is named by a local folder or, for users who are online, a Hugging Face hub id.
 * Hub ids are fetched through @huggingface/transformers (its own cache, its own network
 * code), and the resulting cache folder — the same transformers.js layout — is used as a
 * local folder from then on. Tests only use local folders and the offline refusal.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';

export interface ResolveOptions {
  /** Allow downloading a hub id (default: false unless FLOWTUNE_ALLOW_REMOTE=1). */
  allowRemote?: boolean;
  /** transformers.js's cache folder (default: its env.cacheDir) */
  cacheDir?: string;
}

export async function resolveModelDir(spec: string, o: ResolveOptions = {}): Promise<string> {
  if (existsSync(spec)) return spec;
  const looksLikeId = /^[\w.-]+\/[\w.-]+$/.test(spec);
  const allowRemote = o.allowRemote ?? process.env.FLOWTUNE_ALLOW_REMOTE === '1';
  if (!looksLikeId) throw new UsageError(`${spec}: no such model folder`);
  const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');
  // transformers.js keeps a downloaded hub model as <cacheDir>/<org>/<name>/ in the same layout
  const cached = path.join(o.cacheDir ?? String(env.cacheDir), spec);
  const hasGraph =
    existsSync(path.join(cached, 'onnx')) &&
    readdirSync(path.join(cached, 'onnx')).some((f) => /^(model|decoder_model_merged)(_\w+)?\.onnx$/.test(f));
  if (hasGraph && existsSync(path.join(cached, 'config.json'))) return cached;
  if (!allowRemote)
    throw new UsageError(
      `${spec}: not a local folder and not in the transformers.js cache (${cached}); download it once (FLOWTUNE_ALLOW_REMOTE=1) or give the export's folder`,
    );
  env.allowRemoteModels = true;
  try {
    await AutoTokenizer.from_pretrained(spec);
    const m = await AutoModelForCausalLM.from_pretrained(spec, { dtype: 'fp32' });
    await m.dispose();
  } catch (err) {
    throw new UsageError(`${spec}: cannot fetch from the hub (${(err as Error).message.split('\n')[0]})`);
  }
  if (!existsSync(path.join(cached, 'onnx', 'model.onnx')))
    throw new UsageError(`${spec}: downloaded, but no fp32 onnx/model.onnx in ${cached}`);
  return cached;
}
