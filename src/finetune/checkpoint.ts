import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../core/errors.js';

/**
 * Checkpoints as folders runDir/checkpoints/step-NNNNNNNN/ holding named files plus a
 * manifest with their sha256. A checkpoint is written into a temporary folder and renamed
 * into place, and `latest` (a one-line file, itself replaced by rename) names the newest, so
 * a run killed at any moment leaves either the old or the new checkpoint, never half of one.
 */
export interface Checkpoint {
  step: number;
  dir: string;
  files: Map<string, Buffer>;
}

const dirName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** `write(dir)` puts the checkpoint's files into a fresh folder; the manifest then covers them all. */
export function saveCheckpoint(runDir: string, step: number, write: (dir: string) => void, keep = 2): string {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const final = join(root, dirName(step));
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  write(tmp);
  const manifest: Record<string, string> = {};
  for (const name of listFiles(tmp)) manifest[name] = createHash('sha256').update(readFileSync(join(tmp, name))).digest('hex');
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({ step, files: manifest }, null, 2));
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  const latestTmp = join(root, `latest.tmp-${process.pid}`);
  writeFileSync(latestTmp, dirName(step) + '\n');
  renameSync(latestTmp, join(root, 'latest'));
  // prune older checkpoints only after the new one is in place
  const all = readdirSync(root).filter((d) => /^step-\d{8}$/.test(d)).sort();
  for (const d of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(root, d), { recursive: true, force: true });
  return final;
}

export function hasCheckpoint(runDir: string): boolean {
  return existsSync(join(runDir, 'checkpoints', 'latest'));
}

/** The newest checkpoint, with every file checked against the manifest. */
export function loadLatestCheckpoint(runDir: string): Checkpoint {
  const root = join(runDir, 'checkpoints');
  let name: string;
  try {
    name = readFileSync(join(root, 'latest'), 'utf8').trim();
  } catch {
    throw new UsageError(`${runDir} has no checkpoint to resume from`);
  }
  const dir = join(root, name);
  let manifest: { step: number; files: Record<string, string> };
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch {
    throw new UsageError(`checkpoint ${dir} has no readable manifest.json`);
  }
  const files = new Map<string, Buffer>();
  for (const [file, sha] of Object.entries(manifest.files)) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(dir, file));
    } catch {
      throw new UsageError(`checkpoint ${dir} is missing ${file}`);
    }
    if (createHash('sha256').update(bytes).digest('hex') !== sha) throw new UsageError(`checkpoint file ${join(dir, file)} is corrupt (sha256 mismatch)`);
    files.set(file, bytes);
  }
  return { step: manifest.step, dir, files };
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
