import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { LmSession } from '../src/lm/session.js';
import { sample } from '../src/lm/sampler.js';
import { CharTokenizer, loadHfTokenizer } from '../src/lm/tokenizer.js';
import { hfGreedy } from './helpers/hf-greedy.js';

async function ourGreedy(dir: string, prompts: string[], maxNew: number): Promise<number[][]> {
  const s = await LmSession.open(dir);
  const tok = new CharTokenizer();
  // one left-padded batch: padding must not change greedy decoding either
  const r = await sample(
    s,
    prompts.map((p) => tok.encode(p)),
    { maxNewTokens: maxNew, temperature: 0, keepHidden: false },
  );
  await s.release();
  return prompts.map((_, b) => Array.from(r.tokens.subarray(b * r.steps, b * r.steps + r.lengths[b])));
}

test('AutoTokenizer reads the char tokenizer.json and agrees with CharTokenizer', async () => {
  const m = writeTempModel(51);
  try {
    const hf = await loadHfTokenizer(m.dir, 0, 98);
    const ours = new CharTokenizer();
    let all = '\n';
    for (let c = 32; c <= 126; c++) all += String.fromCharCode(c);
    const text = `Question: 6 - 0 - 4 = ? Answer: 6 - 0 = 6, 6 - 4 = 2. The answer is 2.${all}caf\u00e9`;
    assert.deepEqual(hf.encode(text), ours.encode(text));
    assert.equal(ours.encode('\u00e9')[0], 1); // unknown → <unk>
    const ids = ours.encode('  a . b ,c\n');
    assert.equal(hf.decode(ids), '  a . b ,c\n');
    assert.equal(hf.decode([...ids, 0], true), '  a . b ,c\n');
  } finally {
    m.cleanup();
  }
});

test('transformers.js greedy generate equals our greedy sampler (random-weight model)', async () => {
  const m = writeTempModel(52, {}, {}, 3);
  try {
    const prompts = ['Question: 1 + 2', 'ab', 'The quick brown fox jumps'];
    const ours = await ourGreedy(m.dir, prompts, 24);
    const theirs = await hfGreedy(m.dir, prompts, 24);
    assert.deepEqual(ours, theirs);
    // meaningful only if rows run for a while and differ from each other
    for (const row of ours) assert.ok(row.length >= 8, `row of ${row.length} tokens`);
    assert.notDeepEqual(ours[0], ours[1]);
  } finally {
    m.cleanup();
  }
});

const shipped = path.resolve('models/arith-char');
test('transformers.js loads the shipped model offline; greedy generate equals our sampler token for token', async () => {
  const prompts = ['Question: 6 - 0 - 4 = ? Answer:', 'Question: 7 + 5 + 9 - 3 = ? Answer:', 'Question: 2 - 1 = ? Answer:'];
  const ours = await ourGreedy(shipped, prompts, 80);
  const theirs = await hfGreedy(shipped, prompts, 80);
  assert.deepEqual(ours, theirs);
  // and the model does stop: every row ends with EOS within 80 tokens
  for (const row of ours) assert.equal(row[row.length - 1], 0);
});
