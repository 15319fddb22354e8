// Compiles the AssemblyScript kernels in asm/ to dist/wasm/ (offline; asc comes from npm).
import { readdirSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const asc = require.resolve('assemblyscript/bin/asc.js');
mkdirSync('dist/wasm', { recursive: true });
for (const f of readdirSync('asm').filter((f) => f.endsWith('.ts'))) {
  const out = `dist/wasm/${f.replace(/\.ts$/, '.wasm')}`;
  execFileSync(process.execPath, [asc, `asm/${f}`, '-o', out, '-O3', '--enable', 'simd', '--runtime', 'stub', '--noAssert'], {
    stdio: 'inherit',
  });
}
