import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  backend: string;
  tfjsVersion: string;
  threads: number;
  tried: { name: string; ok: boolean; reason?: string }[];
}

let selected: BackendInfo | undefined;

/**
 * Chooses the tensor backend once per process, in the order docs/design.md §3 gives:
 * tfjs-node-gpu → tfjs-node → wasm → cpu. The native packages are optional dependencies
 * (their installs fail offline), so each is tried and skipped when absent.
 * FLOWTUNE_BACKEND=wasm|cpu|tensorflow forces one.
 */
export async function selectBackend(): Promise<BackendInfo> {
  if (selected) return selected;
  const forced = process.env.FLOWTUNE_BACKEND;
  const tried: BackendInfo['tried'] = [];
  const attempts: [string, () => Promise<boolean>][] = [
    ['tfjs-node-gpu', () => loadNative('@tensorflow/tfjs-node-gpu')],
    ['tfjs-node', () => loadNative('@tensorflow/tfjs-node')],
    ['wasm', loadWasm],
    ['cpu', async () => tf.setBackend('cpu')],
  ];
  for (const [name, attempt] of attempts) {
    if (forced && !matchesForced(name, forced)) continue;
    try {
      if (await attempt()) {
        tried.push({ name, ok: true });
        break;
      }
      tried.push({ name, ok: false, reason: 'backend refused to start' });
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      tried.push({ name, ok: false, reason: /Cannot find (package|module)/.test(msg) ? 'not installed' : msg });
    }
  }
  await tf.ready();
  selected = {
    backend: tf.getBackend(),
    tfjsVersion: tf.version.tfjs,
    threads: wasmThreads(),
    tried,
  };
  return selected;
}

function matchesForced(name: string, forced: string): boolean {
  if (forced === 'tensorflow') return name.startsWith('tfjs-node');
  return name === forced;
}

async function loadNative(pkg: string): Promise<boolean> {
  await import(pkg);
  return tf.setBackend('tensorflow');
}

async function loadWasm(): Promise<boolean> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  const dir = require.resolve('@tensorflow/tfjs-backend-wasm').replace(/[^/]*$/, '');
  // In Node the .wasm binaries are read from the package folder, never fetched.
  wasm.setWasmPaths(dir);
  return tf.setBackend('wasm');
}

function wasmThreads(): number {
  // tfjs-backend-wasm runs single-threaded in Node (no SharedArrayBuffer workers).
  return tf.getBackend() === 'wasm' ? 1 : 0;
}

export { tf };
