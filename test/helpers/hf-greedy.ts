/**
 * transformers.js greedy generation, one prompt at a time, from a local model folder only: the
 * independent decoder the parity tests compare flowtune's own greedy decoding with.
 */
import path from 'node:path';

export async function hfGreedy(dir: string, prompts: string[], maxNew: number, extra: Record<string, unknown> = {}): Promise<number[][]> {
  const { AutoTokenizer, AutoModelForCausalLM, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(dir)) + path.sep;
  const id = path.basename(dir);
  const tok = await AutoTokenizer.from_pretrained(id);
  const model = await AutoModelForCausalLM.from_pretrained(id, { dtype: 'fp32', ...extra });
  const out: number[][] = [];
  for (const p of prompts) {
    const enc = tok(p);
    const n = enc.input_ids.dims[1];
    const gen: any = await model.generate({ ...enc, max_new_tokens: maxNew, do_sample: false });
    out.push(
      Array.from(gen.data as BigInt64Array)
        .slice(n)
        .map(Number),
    );
  }
  await model.dispose();
  return out;
}
