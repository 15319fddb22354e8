import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { inspectModel } from '../src/lm/inspect.js';
import { findLmHeadInput } from '../src/lm/surgery.js';
import { readOnnx } from '../src/lm/folder.js';
import { UsageError } from '../src/core/errors.js';
import { resolveModelDir } from '../src/lm/resolve.js';

const bin = path.resolve('bin/flowtune.js');

test('graph surgery exposes last_hidden_state of a logits-only export', async () => {
  const withH = writeTempModel(31);
  const noH = writeTempModel(31, {}, { hiddenOutput: false });
  try {
    const { model } = readOnnx(noH.dir);
    assert.ok(!(model.graph!.output ?? []).some((o) => o.name === 'last_hidden_state'));
    assert.equal(findLmHeadInput(model).tensor, 'ln_f_output');
    const a = await LmSession.open(withH.dir);
    const b = await LmSession.open(noH.dir);
    assert.ok(b.hasHidden);
    const ids = [3, 14, 15, 92, 65, 35];
    const fa = await a.forward({ batch: 1, inputIds: ids, attentionMask: [1, 1, 1, 1, 1, 1] });
    const fb = await b.forward({ batch: 1, inputIds: ids, attentionMask: [1, 1, 1, 1, 1, 1] });
    assert.deepEqual(Array.from(fb.hidden!), Array.from(fa.hidden!));
    assert.deepEqual(Array.from(fb.logits), Array.from(fa.logits));
    const plain = await LmSession.open(noH.dir, { needHidden: false });
    assert.equal(plain.hasHidden, false);
    for (const s of [a, b, plain]) await s.release();
    const info = await inspectModel(noH.dir);
    assert.equal(info.hiddenStates, 'via graph surgery');
  } finally {
    withH.cleanup();
    noH.cleanup();
  }
});

test('model inspect reports the architecture, and bad folders give one line with exit code 2', async () => {
  const m = writeTempModel(32, { nLayer: 3, nEmbd: 48, nHead: 3, nCtx: 80 });
  try {
    const info = await inspectModel(m.dir);
    assert.equal(info.layers, 3);
    assert.equal(info.heads, 3);
    assert.equal(info.hiddenSize, 48);
    assert.equal(info.vocabSize, 98);
    assert.equal(info.tokenizerVocab, 98);
    assert.equal(info.contextLength, 80);
    // wte + wpe + lm_head + ln_f + 3 blocks of (2 LN + attn + proj + mlp)
    const d = 48,
      V = 98;
    const expected =
      V * d + 80 * d + d * V + 2 * d + 3 * (4 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d));
    assert.equal(info.parameters, expected);
    assert.equal(info.kvCache, true);
    assert.equal(info.hiddenStates, 'output');
    const ok = spawnSync(process.execPath, [bin, 'model', 'inspect', m.dir], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /3 layers, 3 heads, hidden 48/);
    assert.match(ok.stdout, new RegExp(`parameters\\s+${expected.toLocaleString('en-US')}`));

    const expectFail = (why: RegExp) => {
      const r = spawnSync(process.execPath, [bin, 'model', 'inspect', m.dir], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, why);
    };
    const onnxFile = path.join(m.dir, 'onnx', 'model.onnx');
    writeFileSync(onnxFile, Buffer.from('this is not a protobuf at all, just text'));
    expectFail(/model\.onnx/);
    rmSync(onnxFile);
    expectFail(/missing onnx\/model\.onnx/);
    writeFileSync(path.join(m.dir, 'config.json'), '{ "model_type": "gpt2", ');
    expectFail(/config\.json: not valid JSON/);
    rmSync(path.join(m.dir, 'tokenizer.json'));
    rmSync(path.join(m.dir, 'config.json'));
    expectFail(/missing config\.json/);
    await assert.rejects(inspectModel(path.join(m.dir, 'nope')), UsageError);
    assert.ok(!existsSync(path.join(m.dir, 'nope')));
  } finally {
    m.cleanup();
  }
});

test('model names: local folders resolve to themselves; hub ids are refused offline with one line', async () => {
  const m = writeTempModel(33);
  try {
    assert.equal(await resolveModelDir(m.dir), m.dir);
    await assert.rejects(
      resolveModelDir('no-such-org/no-such-model-xyz', { allowRemote: false }),
      (e: Error) => e instanceof UsageError && /FLOWTUNE_ALLOW_REMOTE/.test(e.message),
    );
    await assert.rejects(resolveModelDir('./definitely/not/here'), UsageError);
  } finally {
    m.cleanup();
  }
});

test('model build-tiny rejects bad input with one line and exit code 2 (before any training)', () => {
  for (const [args, why] of [
    [['--corpus', '/no/such/corpus.txt', '--out', '/tmp/ft-never'], /corpus file not found/],
    [['--corpus', 'arithmetic:100', '--out', '/tmp/ft-never', '--steps', '-3'], /--steps must be a non-negative integer/],
    [['--corpus', 'arithmetic:10', '--out', '/tmp/ft-never'], /corpus has 10 items/],
  ] as [string[], RegExp][]) {
    const r = spawnSync(process.execPath, [bin, 'model', 'build-tiny', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, why);
  }
  assert.ok(!existsSync('/tmp/ft-never'));
});
