/**
 * `flowtune model build-tiny --family llama`: a LLaMA-family model over a byte-level BPE,
 * pre-trained in tfjs and exported through the LLaMA ONNX writer. Checked against two
 * independent implementations: the exported graph (run by onnxruntime through flowtune's
 * session) must give the tfjs forward's logits on the trained weights, and transformers.js
 * must tokenize exactly as the ByteBpe the folder's tokenizer.json was written from.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../src/core/backend.js';
import { buildTiny } from '../src/lmbuild/build.js';
import { ByteBpe } from '../src/lmbuild/bpe.js';
import { fixtureCorpus } from '../src/lmbuild/fixtures.js';
import { llamaTfForward, toLlamaTfParams } from '../src/lmbuild/llama-tf.js';
import { llamaConfigFromHf } from '../src/lm/llama.js';
import { LmSession } from '../src/lm/session.js';
import { packLeft } from '../src/lm/batch.js';
import { loadHfTokenizer } from '../src/lm/tokenizer.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'flowtune-bpe-build-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ENGLISH = [
  'the film is a quiet , funny and moving portrait of a family .',
  'The federal government said on Monday that it would review the rules.',
  "she doesn't know what she wants , and neither does the script .",
  'Prices rose 3.5% in May, the fastest pace since 2008.',
  'a gorgeous , witty , seductive movie .',
];

async function build(name = 'model') {
  const corpus = path.join(root, 'corpus.txt');
  const lines = [...fixtureCorpus(150, 4), ...Array.from({ length: 12 }, (_, i) => ENGLISH[i % ENGLISH.length])];
  writeFileSync(corpus, lines.join('\n') + '\n');
  const out = path.join(root, name);
  const res = await buildTiny({
    out,
    corpus: [corpus],
    exclude: [],
    seed: 3,
    model: {
      family: 'llama',
      merges: 80,
      maxChars: 160,
      config: {
        modelType: 'llama',
        nLayer: 2,
        nHead: 4,
        nKvHead: 2,
        nEmbd: 16,
        headDim: 4,
        intermediateSize: 48,
        nCtx: 96,
        rmsEps: 1e-5,
        ropeTheta: 10000,
        attentionBias: false,
        tieWordEmbeddings: false,
      },
    },
    train: { steps: 40, batch: 8, lr: 2e-2, warmup: 2, clip: 1, evalEvery: 40, valItems: 10 },
    command: 'test',
    log: () => {},
  });
  return { out, res };
}

const built = build();

test('build-tiny --family llama writes a llama folder with GQA and a BPE vocabulary, and it learned', async () => {
  const { out, res } = await built;
  const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.model_type, 'llama');
  assert.equal(cfg.num_attention_heads, 4);
  assert.equal(cfg.num_key_value_heads, 2);
  assert.equal(cfg.tie_word_embeddings, false);
  const tok = res.tokenizer as ByteBpe;
  assert.ok(tok instanceof ByteBpe);
  // 256 bytes + the learned merges + <|endoftext|>
  assert.equal(cfg.vocab_size, 256 + tok.merges.length + 1);
  assert.equal(cfg.eos_token_id, cfg.vocab_size - 1);
  // 40 steps take the held-out loss well below the uniform ln V
  const last = res.curve[res.curve.length - 1];
  assert.ok(last.valLoss < Math.log(cfg.vocab_size) - 1.5, `held-out ${last.valLoss} vs ln V ${Math.log(cfg.vocab_size)}`);
  // bits per character from the same held-out nats
  assert.ok(res.valChars > 0 && res.valNats > 0);
  const readme = readFileSync(path.join(out, 'README.md'), 'utf8');
  assert.match(readme, /bits per character: \*\*\d+\.\d{4}\*\*/);
});

test('the exported ONNX graph gives the tfjs forward logits on the trained weights (left-padded batch)', async () => {
  const { out, res } = await built;
  const cfg = llamaConfigFromHf(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')));
  const tok = res.tokenizer as ByteBpe;
  const rows = [ENGLISH[0], 'Question: 4 + 7 = ? Answer:', ENGLISH[3]].map((t) => tok.encode(t));
  const p = packLeft(rows, cfg.padTokenId);
  const s = await LmSession.open(out);
  assert.equal(s.positions, 'position_ids');
  const got = await s.forward({ batch: rows.length, inputIds: p.ids, attentionMask: p.mask });
  await s.release();
  const want = tf.tidy(() => {
    const params = toLlamaTfParams(cfg, res.weights);
    return llamaTfForward(cfg, params, { batch: rows.length, seqLen: p.len, ids: p.ids, mask: p.mask }).logits.dataSync() as Float32Array;
  });
  let worst = 0;
  let lo = Infinity;
  let hi = -Infinity;
  const V = cfg.vocabSize;
  for (let b = 0; b < rows.length; b++)
    for (let t = p.len - rows[b].length; t < p.len; t++)
      for (let v = 0; v < V; v++) {
        const i = (b * p.len + t) * V + v;
        worst = Math.max(worst, Math.abs(got.logits[i] - want[i]));
        lo = Math.min(lo, want[i]);
        hi = Math.max(hi, want[i]);
      }
  assert.ok(worst <= 1e-4, `max |ONNX − tfjs| = ${worst}`);
  // the trained logits are far from flat (a match on near-zero logits would prove little)
  assert.ok(hi - lo > 3, `logit range ${hi - lo}`);
});

test('transformers.js tokenizes the written tokenizer.json exactly as ByteBpe, and ByteBpe decodes back', async () => {
  const { out, res } = await built;
  const tok = res.tokenizer as ByteBpe;
  const hf = await loadHfTokenizer(out, tok.eosTokenId, tok.vocabSize);
  const texts = [
    ...ENGLISH,
    ...fixtureCorpus(20, 9),
    "  two leading spaces, a\ttab and\nnewlines\n\nhere's 'quoted' they'll",
    'naïve café — 😀 ünïcödé 1234567 ...!!! ?',
    ' .',
    'the movie is .',
  ];
  for (const t of texts) {
    const mine = tok.encode(t);
    assert.deepEqual(hf.encode(t), mine, t);
    assert.equal(tok.decode(mine), t);
  }
  // merges were learned: the frequent "the" is fewer tokens than bytes
  assert.ok(tok.encode(' the answer is').length < ' the answer is'.length);
});

test('the same seed rebuilds the same model (BPE, weights, ONNX bytes)', async () => {
  const { res } = await built;
  const again = await build('model-again');
  assert.deepEqual((again.res.tokenizer as ByteBpe).merges, (res.tokenizer as ByteBpe).merges);
  assert.equal(again.res.onnxSha256, res.onnxSha256);
  assert.equal(again.res.valNats, res.valNats);
});

test('build-tiny --family llama: bad head counts are one readable line and exit 2', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
  const base = ['model', 'build-tiny', '--corpus', 'x.txt', '--out', path.join(root, 'bad')];
  for (const [extra, msg] of [
    [['--family', 'llama', '--heads', '4', '--kv-heads', '3'], /--heads 4 must be a multiple of --kv-heads 3/],
    [['--family', 'llama', '--embd', '36', '--heads', '4'], /must split into 4 heads of even size/],
    [['--ffn', '64'], /--ffn needs --family llama/],
  ] as const) {
    const r = spawnSync(process.execPath, [cli, ...base, ...extra], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
