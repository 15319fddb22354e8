/**
 * Fault injection on run folders: kill -9 at every phase of a checkpoint write and of the
 * final files, concurrent writers, stale locks, corrupt checkpoints and torn metrics, a full
 * disk and a read-only file system (small tmpfs mounts, where this machine permits them).
 * Each case asserts that nothing is lost: the resumed run ends with exactly the metrics,
 * summary and samples of an uninterrupted run, and no temporary file or lock is left.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { writeTempModel } from '../src/lmbuild/fixtures.js';
import { firstInvalidUtf8, readTextFile } from '../src/core/io.js';
import { checkMemory } from '../src/core/memory.js';

const cli = fileURLToPath(new URL('../../bin/flowtune.js', import.meta.url));
const model = writeTempModel(3, {}, {}, 2);
const work = mkdtempSync(join(tmpdir(), 'ft-faults-'));
const mounts: string[] = [];
after(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  model.cleanup();
  rmSync(work, { recursive: true, force: true });
});

type Result = ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
const run = (args: string[], env: Record<string, string> = {}): Result =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } }) as Result;

/** 8 SubTB steps of a tiny random GPT, a checkpoint every 2 steps, a metrics line every step. */
const STEPS = 8;
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(
  cfgFile,
  YAML.stringify({
    objective: 'subtb',
    seed: 0,
    model: model.dir,
    task: { kind: 'pairs', pairs: [{ x: 'The cat', y: ' sat.' }] },
    z: { maxLength: 4, allowed: ['a', 'b', 'c', 'd'] },
    reward: { prior: 'allowed', likelihoodWeight: 4 },
    train: { steps: STEPS, batchSize: 4, logEvery: 1, checkpointEvery: 2 },
  }),
);

/** metrics.jsonl without the wall-clock fields, which differ between runs. */
const metrics = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _s, samplesPerSec: _p, ...rest } = JSON.parse(l);
      return rest;
    });
const summary = (dir: string) => {
  const { seconds: _s, peakRssMB: _m, run: _r, ...rest } = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  return rest;
};
/** Every NAME.tmp-PID and lock file under a run folder. */
function leftovers(dir: string): string[] {
  const out: string[] = [];
  for (const d of [dir, join(dir, 'checkpoints')]) {
    if (!existsSync(d)) continue;
    for (const n of readdirSync(d)) if (/\.tmp-\d+$|\.stale-\d+$|^\.flowtune\.lock$/.test(n)) out.push(join(d, n));
  }
  return out;
}

function assertUsageError(r: Result, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

function assertSameAsReference(dir: string): void {
  assert.deepEqual(metrics(dir), metrics(ref), 'metrics.jsonl equals the uninterrupted run');
  assert.deepEqual(summary(dir), summary(ref), 'summary.json equals the uninterrupted run');
  assert.equal(readFileSync(join(dir, 'samples.jsonl'), 'utf8'), readFileSync(join(ref, 'samples.jsonl'), 'utf8'));
  assert.deepEqual(leftovers(dir), [], 'no temporary file or lock left');
  assert.ok(existsSync(join(dir, 'report.html')));
}

const ref = join(work, 'ref');
before(() => {
  const r = run(['train', '--config', cfgFile, '--out', ref]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(leftovers(ref), []);
});

// Every point of a checkpoint write (docs: src/finetune/checkpoint.ts), the first checkpoint
// (a run with none yet), and the run's final files: killed there, resumed, nothing lost.
const KILLS = [
  'checkpoint-files:2',
  'checkpoint-files:4',
  'checkpoint-manifest:4',
  'checkpoint-renamed:4',
  'checkpoint-latest:4',
  'checkpoint-pruned:6',
  'final-files:8',
  'report:8',
];
/** The CLI as a child process, without blocking (the kill cases run two at a time). */
function runAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
    let stdout = '',
      stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

test('kill -9 at every phase of a checkpoint write, then --resume: nothing lost', async () => {
  const queue = [...KILLS];
  const worker = async () => {
    for (let at = queue.shift(); at; at = queue.shift()) {
      const dir = join(work, `kill-${at.replace(':', '-')}`);
      const k = await runAsync(['train', '--config', cfgFile, '--out', dir], { FLOWTUNE_KILL_AT: at });
      assert.equal(k.signal, 'SIGKILL', `${at}: the run was killed (${k.stderr})`);
      const r = await runAsync(['train', '--resume', '--out', dir]);
      assert.equal(r.status, 0, `${at}: ${r.stderr}`);
      if (at === 'checkpoint-files:2') assert.match(r.stderr, /has no checkpoint; restarting it from step 0/);
      if (at === 'report:8') assert.match(r.stdout, /is complete \(step 8 of 8\); nothing to do/);
      else assert.match(r.stderr, /resuming .* at step \d+ of 8|restarting/, at);
      assertSameAsReference(dir);
    }
  };
  await Promise.all([worker(), worker()]);
});

test('--resume of a finished run changes nothing; a config given with --resume must match (train.steps may grow)', () => {
  const dir = join(work, 'finished');
  cpSync(ref, dir, { recursive: true });
  const before = Object.fromEntries(
    ['metrics.jsonl', 'summary.json', 'samples.jsonl', 'report.html'].map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );
  const r = run(['train', '--resume', '--out', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /is complete \(step 8 of 8\); nothing to do/);
  for (const [f, text] of Object.entries(before)) assert.equal(readFileSync(join(dir, f), 'utf8'), text, `${f} untouched`);
  assertUsageError(run(['train', '--resume', '--out', dir, '--set', 'seed=5']), /differs from the run's .*config\.yaml in seed/);
  assertUsageError(
    run(['train', '--resume', '--out', dir, '--config', cfgFile, '--set', 'objective=tb', '--set', 'optim.lr=0.1']),
    /in objective, optim\.lr/,
  );
  assertUsageError(run(['train', '--resume', '--out', dir, '--set', 'train.steps=4']), /train\.steps 4 is below the run's 8/);
  // the same config, given again, is accepted
  assert.equal(run(['train', '--resume', '--out', dir, '--config', cfgFile]).status, 0);
  // extending: 8 more steps continue from the last checkpoint
  const ext = run(['train', '--resume', '--out', dir, '--set', `train.steps=${STEPS + 2}`]);
  assert.equal(ext.status, 0, ext.stderr);
  assert.match(ext.stderr, /extending .* from 8 to 10 steps/);
  const m = metrics(dir);
  assert.deepEqual(
    m.map((l) => l.step),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.deepEqual(m.slice(0, STEPS), metrics(ref), 'the first 8 steps are kept as they were');
  assert.equal(YAML.parse(readFileSync(join(dir, 'config.yaml'), 'utf8')).train.steps, 10);
});

test('a second writer on a run folder exits 2 naming the holder; a stale lock is taken over with a notice', async () => {
  const dir = join(work, 'concurrent');
  const longCfg = join(work, 'long.yaml');
  // long enough to still be running (and holding the lock) however slow the machine is; stopped with SIGTERM below
  writeFileSync(
    longCfg,
    YAML.stringify({
      ...YAML.parse(readFileSync(cfgFile, 'utf8')),
      train: { steps: 1_000_000, batchSize: 4, logEvery: 1, checkpointEvery: 1000 },
    }),
  );
  const first = spawn(process.execPath, [cli, 'train', '--config', longCfg, '--out', dir], { stdio: 'ignore' });
  const exited = new Promise<number | null>((res) => first.on('exit', (code) => res(code)));
  const lock = join(dir, '.flowtune.lock');
  while (!existsSync(lock)) await new Promise((r) => setTimeout(r, 20));
  const held = JSON.parse(readFileSync(lock, 'utf8'));
  assert.equal(held.pid, first.pid);
  assert.equal(held.host, hostname());
  const second = run(['train', '--config', longCfg, '--out', dir, '--set', 'seed=1']);
  assertUsageError(second, new RegExp(`in use by another flowtune process \\(pid ${first.pid} on `));
  assertUsageError(run(['train', '--resume', '--out', dir]), /in use by another flowtune process/);
  assertUsageError(run(['bench', 'hypergrid', '--algo', 'tb', '--iterations', '5', '--out', dir]), /in use by another flowtune process/);
  while (!existsSync(join(dir, 'metrics.jsonl'))) await new Promise((r) => setTimeout(r, 20));
  first.kill('SIGTERM');
  assert.equal(await exited, 143, 'SIGTERM: exit 128 + 15, after releasing the lock');
  const steps = metrics(dir).map((l) => l.step);
  assert.deepEqual(
    steps,
    Array.from({ length: steps.length }, (_, i) => i + 1),
    'one writer: one line per step, in order',
  );
  assert.equal(YAML.parse(readFileSync(join(dir, 'config.yaml'), 'utf8')).seed, 0);
  assert.ok(!existsSync(lock), 'the lock is released at exit');

  // two writers started at the same moment on a fresh folder: exactly one of them runs
  const both = join(work, 'both');
  const [x, y] = await Promise.all([
    runAsync(['train', '--config', cfgFile, '--out', both]),
    runAsync(['train', '--config', cfgFile, '--out', both, '--set', 'seed=1']),
  ]);
  assert.deepEqual([x.status, y.status].sort(), [0, 2], x.stderr + y.stderr);
  const [winner, loser] = x.status === 0 ? [x, y] : [y, x];
  assert.match(loser.stderr.trim(), /^flowtune: .*(in use by another flowtune process|already holds a run)[^\n]*$/);
  assert.deepEqual(
    metrics(both).map((l) => l.step),
    Array.from({ length: STEPS }, (_, i) => i + 1),
  );
  assert.equal(YAML.parse(readFileSync(join(both, 'config.yaml'), 'utf8')).seed, winner === x ? 0 : 1);

  // a lock left by a process that is gone (kill -9) is taken over, said in one line
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const stale = join(work, 'stale');
  mkdirSync(stale);
  writeFileSync(
    join(stale, '.flowtune.lock'),
    JSON.stringify({ pid: Number(gone.stdout), host: hostname(), procStart: null, since: '2026-01-01T00:00:00Z', command: 'train' }),
  );
  const r = run(['train', '--config', cfgFile, '--out', stale]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter((l) => /taking over the lock of pid \d+ .*no longer running/.test(l)).length, 1, r.stderr);
  assertSameAsReference(stale);
  // a lock held on another host cannot be checked: refused, with the way out named
  const remote = join(work, 'remote');
  mkdirSync(remote);
  writeFileSync(
    join(remote, '.flowtune.lock'),
    JSON.stringify({ pid: 1, host: 'elsewhere', procStart: null, since: '2026-01-01T00:00:00Z', command: 'train' }),
  );
  assertUsageError(run(['train', '--config', cfgFile, '--out', remote]), /pid 1 on elsewhere.*delete .*\.flowtune\.lock/);
});

test('corrupt files: the newest intact checkpoint is named and used; torn metrics lines are dropped', () => {
  // corrupt the newest checkpoint of a run killed at step 7 (checkpoints 4 and 6 on disk)
  const dir = join(work, 'corrupt');
  const k = run(['train', '--config', cfgFile, '--out', dir], { FLOWTUNE_KILL_AT: 'checkpoint-files:8' });
  assert.equal(k.signal, 'SIGKILL');
  appendFileSync(join(dir, 'checkpoints', 'step-00000006', 'state.json'), ' ');
  appendFileSync(join(dir, 'metrics.jsonl'), '{"step": 9, "lo'); // torn line
  const r = run(['train', '--resume', '--out', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /step-00000006 is unusable: state\.json is corrupt \(sha256 mismatch\); using .*step-00000004 \(step 4\), the newest intact checkpoint/,
  );
  assert.match(r.stderr, /resuming .* at step 4 of 8/);
  assertSameAsReference(dir);

  // every checkpoint unusable: said, and the run starts over (what they held is lost either way)
  const all = join(work, 'all-corrupt');
  cpSync(join(work, 'kill-checkpoint-latest-4'), all, { recursive: true });
  for (const d of readdirSync(join(all, 'checkpoints')).filter((n) => n.startsWith('step-')))
    rmSync(join(all, 'checkpoints', d, 'manifest.json'));
  rmSync(join(all, 'summary.json'));
  const a = run(['train', '--resume', '--out', all]);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /has no intact checkpoint .*no readable manifest\.json.*; restarting from step 0/);
  assertSameAsReference(all);

  // sample uses the newest intact checkpoint too, and says so
  appendFileSync(join(dir, 'checkpoints', 'step-00000008', 'optimizer.json'), ' ');
  const s = run(['sample', '--run', dir, '--x', 'The cat', '-n', '2', '--json']);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stderr, /warning: checkpoint .*step-00000008 is unusable: optimizer\.json is corrupt .*using .*step-00000006 \(step 6\)/);
  assert.equal(s.stdout.trim().split('\n').length, 2);
});

test('text inputs are strict UTF-8: the bad file and line are named', () => {
  const bad = join(work, 'bad.yaml');
  writeFileSync(bad, Buffer.concat([Buffer.from('objective: tb\nseed: 0\n# caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
  assertUsageError(
    run(['train', '--config', bad, '--out', join(work, 'bad-run')]),
    /bad\.yaml: line 3, column 6 is not valid UTF-8 \(byte 0xe9\)/,
  );
  assert.ok(!existsSync(join(work, 'bad-run')), 'a failed validation leaves no --out folder');
  const file = join(work, 'lines.txt');
  // valid 2-, 3- and 4-byte sequences, then an overlong encoding of "/" (0xc0 0xaf) on line 3
  writeFileSync(file, Buffer.concat([Buffer.from('é→😀\nok\nx'), Buffer.from([0xc0, 0xaf]), Buffer.from('\n')]));
  assert.equal(firstInvalidUtf8(readFileSync(file)), Buffer.byteLength('é→😀\nok\nx'));
  assert.throws(() => readTextFile(file), /lines\.txt: line 3, column 2 is not valid UTF-8 \(byte 0xc0\)/);
  writeFileSync(file, 'é→😀\n');
  assert.equal(readTextFile(file), 'é→😀\n');
  // characters the tokenizer lacks (the tiny model knows printable ASCII): a warning naming them
  const w = run(['sample', '--run', ref, '--x', 'The café → x', '-n', '2', '--json']);
  assert.equal(w.status, 0, w.stderr);
  assert.match(w.stderr, /warning: -x has characters the model's tokenizer cannot encode .*"é" \(U\+00E9\), "→" \(U\+2192\)/);
});

test('sizes are checked before anything is allocated', () => {
  assert.throws(() => checkMemory('x', 2e9, 1e9), /x needs at least 2\.0 GB, more than the 1\.0 GB of memory available/);
  assert.doesNotThrow(() => checkMemory('x', 1e9, 2e9));
  // sizes far beyond any machine's memory (petabytes), so the refusal holds everywhere
  const t0 = Date.now();
  assertUsageError(
    run(['bench', 'hypergrid', '--algo', 'tb', '--batch', '100000000000']),
    /--batch 100000000000 .*needs at least [\d.]+ [GT]B, more than the .* of memory available/,
  );
  assertUsageError(
    run(['bench', 'hypergrid', '--algo', 'mh', '--ndim', '2', '--batch', '100000000000000']),
    /--batch 100000000000000 chains needs at least/,
  );
  assertUsageError(
    run(['train', '--config', cfgFile, '--set', 'train.batchSize=1000000000000', '--out', join(work, 'huge')]),
    /train\.batchSize 1000000000000 × vocabulary 98 needs at least/,
  );
  assert.ok(!existsSync(join(work, 'huge')), 'and leaves no --out folder');
  assert.ok(Date.now() - t0 < 60_000, 'refused at once, not after allocating');
});

/** A tmpfs mount at dir (root with mount permission only); null says why not. */
function mountTmpfs(dir: string, opts: string): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount -t tmpfs is not permitted here (${(r.stderr || r.error?.message || '').trim()})`;
  mounts.push(dir);
  return null;
}

test('a full disk: one line naming the path (ENOSPC), no temporary checkpoint left, resume after space is freed loses nothing', (t) => {
  const mnt = join(work, 'small');
  // a checkpoint of this run is ~0.55 MB: steps 2 and 4 fit, step 6 (three at once before pruning) does not
  const why = mountTmpfs(mnt, 'size=1400k');
  if (why) return t.skip(why);
  const dir = join(mnt, 'run');
  const r = run(['train', '--config', cfgFile, '--out', dir]);
  assert.equal(r.status, 2, r.stderr);
  const errs = r.stderr.split('\n').filter((l) => l.startsWith('flowtune:'));
  assert.equal(errs.length, 1, r.stderr);
  assert.match(errs[0], new RegExp(`cannot write .*${dir.replace(/[/.]/g, '\\$&')}/\\S+: no space left on device \\(ENOSPC\\)`));
  assert.deepEqual(leftovers(dir), [], 'the failed checkpoint removed its temporary folder, and the lock is released');
  // free space (as a user would), resume: the same numbers as a run that never hit the wall
  assert.equal(spawnSync('mount', ['-o', 'remount,size=20m', mnt]).status, 0);
  const res = run(['train', '--resume', '--out', dir]);
  assert.equal(res.status, 0, res.stderr);
  assertSameAsReference(dir);
});

test('a read-only file system: one line naming the path (EROFS), no folder created, nothing overwritten', (t) => {
  const mnt = join(work, 'ro');
  const why = mountTmpfs(mnt, 'size=1m,ro');
  if (why) return t.skip(why);
  assertUsageError(
    run(['train', '--config', cfgFile, '--out', join(mnt, 'run')]),
    /cannot create folder .*ro\/run: read-only file system \(EROFS\)/,
  );
  assertUsageError(
    run(['bench', 'hypergrid', '--algo', 'tb', '--iterations', '5', '--out', join(mnt, 'b')]),
    /read-only file system \(EROFS\)/,
  );
  assertUsageError(run(['report', '--run', ref, '--out', join(mnt, 'r.html')]), /cannot write .*r\.html: read-only file system \(EROFS\)/);
  // a run folder on a file system remounted read-only: --resume says so and changes nothing
  const rw = join(work, 'rw');
  const why2 = mountTmpfs(rw, 'size=4m');
  if (why2) return t.skip(why2);
  const dir = join(rw, 'run');
  assert.equal(run(['train', '--config', cfgFile, '--out', dir], { FLOWTUNE_KILL_AT: 'checkpoint-files:6' }).signal, 'SIGKILL');
  assert.equal(spawnSync('mount', ['-o', 'remount,ro', rw]).status, 0);
  assertUsageError(run(['train', '--resume', '--out', dir]), /read-only file system \(EROFS\)/);
  assert.equal(spawnSync('mount', ['-o', 'remount,rw', rw]).status, 0);
  const r = run(['train', '--resume', '--out', dir]);
  assert.equal(r.status, 0, r.stderr);
  assertSameAsReference(dir);
});
