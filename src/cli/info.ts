import type { CommandModule } from 'yargs';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../core/backend.js';

const projectRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Reads package.json directly: some packages' export maps hide it from require. */
function versionOf(pkg: string | null): string {
  const file = pkg ? `${projectRoot}node_modules/${pkg}/package.json` : `${projectRoot}package.json`;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

export const infoCommand: CommandModule<object, { json: boolean }> = {
  command: 'info',
  describe: 'print the tensor backend, package versions and threads',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'one JSON object' }),
  handler: async (args) => {
    const b = await selectBackend();
    const info = {
      flowtune: versionOf(null),
      node: process.version,
      platform: `${os.platform()}-${os.arch()}`,
      cpus: os.cpus().length,
      backend: b.backend,
      backendTried: b.tried.map((t) => (t.ok ? `${t.name}: ok` : `${t.name}: ${t.reason}`)),
      tfjs: b.tfjsVersion,
      tfjsThreads: b.threads,
      onnxruntimeNode: versionOf('onnxruntime-node'),
      transformers: versionOf('@huggingface/transformers'),
    };
    if (args.json) {
      console.log(JSON.stringify(info));
      return;
    }
    for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(16)} ${Array.isArray(v) ? v.join('; ') : v}`);
  },
};
