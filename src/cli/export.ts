import type { Argv, CommandModule } from 'yargs';
import { selectBackend } from '../core/backend.js';
import { exportMerged, exportPeft } from '../finetune/export.js';

export const exportCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'export',
  describe: 'export a LoRA run: a merged model folder (transformers.js layout) or, with --peft, a PEFT adapter',
  builder: (y: Argv) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run folder trained with adapter.kind lora' })
      .option('out', { type: 'string', demandOption: true, describe: 'new folder (never overwritten)' })
      .option('peft', {
        type: 'boolean',
        default: false,
        describe: 'write adapter_config.json + adapter_model.safetensors for Hugging Face PEFT',
      })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    await selectBackend();
    const r = a.peft ? await exportPeft(a.run as string, a.out as string) : await exportMerged(a.run as string, a.out as string);
    if (a.json) console.log(JSON.stringify(r));
    else
      console.log(
        `${a.peft ? 'PEFT adapter' : 'merged model'} of ${a.run} (step ${r.step}, base ${r.baseModel} sha256 ${r.baseSha256.slice(0, 12)}…) → ${r.out}: ${r.files.join(', ')}`,
      );
  },
};
