import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCheckpoint, loadLatestCheckpoint, saveCheckpoint } from '../src/finetune/checkpoint.js';
import { UsageError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

test('checkpoints: files and a sha256 manifest, latest names the newest, older ones pruned to keep', () => {
  const run = mkdtempSync(join(tmpdir(), 'ft-ckpt-'));
  try {
    assert.equal(hasCheckpoint(run), false);
    assert.throws(
      () => loadLatestCheckpoint(run),
      (e: Error) => e instanceof UsageError && /no checkpoint/.test(e.message),
    );
    const rng = new Rng(3);
    for (const step of [5, 10, 15]) {
      rng.uniform();
      const dir = saveCheckpoint(run, step, (d) => {
        writeFileSync(join(d, 'rng.json'), JSON.stringify(rng.state()));
        mkdirSync(join(d, 'head'));
        writeFileSync(join(d, 'head', 'w.bin'), Buffer.from([step, 1, 2]));
      });
      assert.equal(dir, join(run, 'checkpoints', `step-${String(step).padStart(8, '0')}`));
    }
    assert.equal(hasCheckpoint(run), true);
    assert.equal(readFileSync(join(run, 'checkpoints', 'latest'), 'utf8'), 'step-00000015\n');
    // keep = 2 by default: step 5 is gone, no temporary folders remain
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-00000010', 'step-00000015']);
    const ck = loadLatestCheckpoint(run);
    assert.equal(ck.step, 15, 'checkpoint step');
    assert.deepEqual([...ck.files.keys()], ['head/w.bin', 'rng.json']);
    assert.deepEqual(ck.files.get('head/w.bin'), Buffer.from([15, 1, 2]));
    // the RNG state round-trips: a resumed stream continues exactly where the saved one was
    const resumed = Rng.fromState(JSON.parse(ck.files.get('rng.json')!.toString('utf8')));
    assert.equal(resumed.uniform(), rng.uniform(), 'RNG stream after resume');
    const manifest = JSON.parse(readFileSync(join(ck.dir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.step, 15);
    assert.equal(manifest.files['head/w.bin'], sha(Buffer.from([15, 1, 2])), 'manifest sha256 of head/w.bin');
    assert.equal(manifest.files['rng.json'], sha(ck.files.get('rng.json')!));
    // keep = 1 prunes to the newest one
    saveCheckpoint(run, 20, (d) => writeFileSync(join(d, 'a'), 'x'), 1);
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).sort(), ['latest', 'step-00000020']);
    // a corrupt file or a missing one is a readable UsageError
    writeFileSync(join(run, 'checkpoints', 'step-00000020', 'a'), 'y');
    assert.throws(
      () => loadLatestCheckpoint(run),
      (e: Error) => e instanceof UsageError && /corrupt \(sha256 mismatch\)/.test(e.message),
    );
    rmSync(join(run, 'checkpoints', 'step-00000020', 'a'));
    assert.throws(
      () => loadLatestCheckpoint(run),
      (e: Error) => e instanceof UsageError && /step-00000020 is unusable: a is missing/.test(e.message),
    );
    rmSync(join(run, 'checkpoints', 'step-00000020', 'manifest.json'));
    assert.throws(
      () => loadLatestCheckpoint(run),
      (e: Error) => e instanceof UsageError && /no readable manifest/.test(e.message),
    );
    assert.ok(!existsSync(join(run, 'checkpoints', `latest.tmp-${process.pid}`)));
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});
