import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, ioError } from '../core/errors.js';

/**
 * Checkpoints as folders runDir/checkpoints/step-NNNNNNNN/ holding named files plus a
 * manifest with their sha256. A checkpoint is written into a temporary folder and renamed
 * into place, and `latest` (a one-line file, itself replaced by rename) names the newest, so
 * a run killed at any moment leaves either the old or the new checkpoint, never half of one.
 * A write that fails (a full disk) removes its temporary folder; one left by a kill -9 is
 * swept by the next writer of the run (core/io.ts sweepTempFiles).
 */
export interface Checkpoint {
  step: number;
  dir: string;
  files: Map<string, Buffer>;
}

const dirName = (step: number) => `step-${String(step).padStart(8, '0')}`;
const STEP_DIR = /^step-(\d{8})$/;

/**
 * Fault injection for test/faults.test.ts: FLOWTUNE_KILL_AT=PHASE:STEP makes this process
 * kill -9 itself at that point of writing the checkpoint (or the run's final files) of that
 * step, the way a power cut or the OOM killer would.
 */
export function killPoint(phase: string, step: number): void {
  if (process.env.FLOWTUNE_KILL_AT === `${phase}:${step}`) process.kill(process.pid, 'SIGKILL');
}

/** `write(dir)` puts the checkpoint's files into a fresh folder; the manifest then covers them all. */
export function saveCheckpoint(runDir: string, step: number, write: (dir: string) => void, keep = 2): string {
  const root = join(runDir, 'checkpoints');
  const final = join(root, dirName(step));
  const tmp = `${final}.tmp-${process.pid}`;
  try {
    mkdirSync(root, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    write(tmp);
    killPoint('checkpoint-files', step);
    const manifest: Record<string, string> = {};
    for (const name of listFiles(tmp))
      manifest[name] = createHash('sha256')
        .update(readFileSync(join(tmp, name)))
        .digest('hex');
    writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({ step, files: manifest }, null, 2));
    killPoint('checkpoint-manifest', step);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (err) {
    // a full disk must not keep the half-written folder (and the space) around
    rmSync(tmp, { recursive: true, force: true });
    throw ioError('write checkpoint', final, err);
  }
  killPoint('checkpoint-renamed', step);
  const latestTmp = join(root, `latest.tmp-${process.pid}`);
  try {
    writeFileSync(latestTmp, dirName(step) + '\n');
    renameSync(latestTmp, join(root, 'latest'));
  } catch (err) {
    rmSync(latestTmp, { force: true });
    throw ioError('write', join(root, 'latest'), err);
  }
  killPoint('checkpoint-latest', step);
  // prune only after the new one is in place: older ones beyond `keep`, and any later ones
  // (a run resumed from an earlier checkpoint abandons them)
  const all = stepDirs(root);
  const older = all.filter((d) => d.step <= step);
  for (const d of [...all.filter((d) => d.step > step), ...older.slice(keep)]) rmSync(join(root, d.name), { recursive: true, force: true });
  killPoint('checkpoint-pruned', step);
  return final;
}

/** step-NNNNNNNN folders, newest first. */
function stepDirs(root: string): { name: string; step: number }[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: STEP_DIR.exec(name) }))
    .filter((e) => e.m)
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .sort((a, b) => b.step - a.step);
}

export function hasCheckpoint(runDir: string): boolean {
  return existsSync(join(runDir, 'checkpoints', 'latest')) || stepDirs(join(runDir, 'checkpoints')).length > 0;
}

/** One checkpoint folder with every file checked against its manifest; throws the reason it is unusable. */
function verifyCheckpoint(dir: string, expectStep: number): Checkpoint {
  let manifest: { step: number; files: Record<string, string> };
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch {
    throw new Error('no readable manifest.json');
  }
  if (manifest?.step !== expectStep || typeof manifest.files !== 'object' || manifest.files === null)
    throw new Error('manifest.json does not describe this checkpoint');
  const files = new Map<string, Buffer>();
  for (const [file, sha] of Object.entries(manifest.files)) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(dir, file));
    } catch {
      throw new Error(`${file} is missing`);
    }
    if (createHash('sha256').update(bytes).digest('hex') !== sha) throw new Error(`${file} is corrupt (sha256 mismatch)`);
    files.set(file, bytes);
  }
  return { step: manifest.step, dir, files };
}

/**
 * The newest intact checkpoint, every file checked against the manifest. A corrupt or
 * incomplete newer one is named through `notice` (never skipped silently) and the newest
 * intact one is used; with none intact this is an error listing why.
 */
export function loadLatestCheckpoint(runDir: string, notice?: (line: string) => void): Checkpoint {
  const root = join(runDir, 'checkpoints');
  const dirs = stepDirs(root);
  if (dirs.length === 0) throw new UsageError(`${runDir} has no checkpoint to resume from`);
  const problems: string[] = [];
  for (const d of dirs) {
    const dir = join(root, d.name);
    try {
      const ck = verifyCheckpoint(dir, d.step);
      if (problems.length) notice?.(`checkpoint ${problems.join('; ')}; using ${dir} (step ${d.step}), the newest intact checkpoint`);
      return ck;
    } catch (err) {
      problems.push(`${dir} is unusable: ${(err as Error).message}`);
    }
  }
  throw new UsageError(`${runDir} has no intact checkpoint (${problems.join('; ')})`);
}

/** Relative paths of all files under dir, sorted. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}
