import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  writeFileSync,
  appendFileSync,
  renameSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { UsageError, ioError } from './errors.js';

/** Folders this process created (deepest last), so a failed command can remove the empty ones. */
const createdDirs: string[] = [];

/**
 * Creates a folder and its parents. On failure the error names the part of the path that
 * could not be made and the real cause (a recursive mkdir reports ENOENT for a read-only
 * parent, and nothing useful for a file in the way).
 */
export function ensureDir(dir: string): void {
  const abs = resolve(dir);
  const missing: string[] = [];
  let p = abs;
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  if (existsSync(p) && !statSync(p).isDirectory())
    throw new UsageError(`cannot create folder ${dir}: ${p} is a file, not a folder (ENOTDIR)`);
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statSync(m).isDirectory()) continue;
      throw ioError('create folder', m, err);
    }
    createdDirs.push(m);
  }
}

/** Removes the folders this process created that are still empty: a failed command leaves no empty --out behind. */
export function removeCreatedEmptyDirs(): void {
  for (const d of [...createdDirs].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // not empty (the command wrote something worth keeping) or already gone
    }
  }
  createdDirs.length = 0;
}

/** A folder we can write into: created if needed, EROFS/EACCES named with the path. */
export function ensureWritableDir(dir: string): void {
  ensureDir(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw ioError('write to folder', dir, err);
  }
}

/**
 * Creates (or reuses) an output folder after checking that it is writable and that it does
 * not already hold the files we are about to write, so an earlier run is never overwritten.
 */
export function prepareOutDir(dir: string, willWrite: string[]): void {
  ensureWritableDir(dir);
  for (const f of willWrite) {
    if (existsSync(join(dir, f))) throw new UsageError(`${join(dir, f)} already exists; choose another --out folder`);
  }
}

/** Write to a temporary file and rename, so a reader never sees half a file; a failure leaves no temporary behind. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw ioError('write', path, err);
  }
}

export function appendJsonLine(path: string, obj: unknown): void {
  try {
    appendFileSync(path, JSON.stringify(obj) + '\n');
  } catch (err) {
    throw ioError('write', path, err);
  }
}

const TEMP = /\.tmp-(\d+)$/;

/** Whether a process with this id exists on this machine. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes `NAME.tmp-PID` files and folders (half-written files and checkpoints) of processes
 * that are gone, in `dir` and the folders named in `sub`. Called by a run's one writer at
 * start, so a killed write or a full disk does not leave them (and the space) forever.
 */
export function sweepTempFiles(dir: string, sub: string[] = []): string[] {
  const removed: string[] = [];
  for (const d of [dir, ...sub.map((s) => join(dir, s))]) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = TEMP.exec(n);
      if (!m || (Number(m[1]) !== process.pid && processAlive(Number(m[1])))) continue;
      try {
        rmSync(join(d, n), { recursive: true, force: true });
        removed.push(join(d, n));
      } catch (err) {
        throw ioError('remove', join(d, n), err);
      }
    }
  }
  return removed;
}

/**
 * Reads a text input strictly as UTF-8: invalid bytes are an error naming the file and line
 * instead of silently becoming U+FFFD and being trained on.
 */
export function readTextFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw ioError('read', file, err);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1,
      col = 1;
    for (let i = 0; i < at; i++) {
      if (bytes[i] === 0x0a) line++, (col = 1);
      else if ((bytes[i] & 0xc0) !== 0x80) col++;
    }
    throw new UsageError(
      `${file}: line ${line}, column ${col} is not valid UTF-8 (byte 0x${bytes[at].toString(16).padStart(2, '0')}); save the file as UTF-8`,
    );
  }
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence. */
export function firstInvalidUtf8(b: Uint8Array): number {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    try {
      fatal.decode(b.subarray(i, i + n));
    } catch {
      return i;
    }
    i += n;
  }
  return b.length;
}

/** A number for a progress line, or "–" where it is not defined (never "NaN"). */
export function fixedOrDash(v: number | null | undefined, digits: number): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** A progress bar on stderr when it is a terminal; otherwise occasional plain lines. */
export class Progress {
  private bar?: cliProgress.SingleBar;
  private lastLine = 0;
  private value = 0;

  constructor(
    private readonly total: number,
    private readonly label: string,
  ) {
    if (process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {value}/{total} | {status} | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { status: '' });
    }
  }

  update(value: number, status: string): void {
    const changed = value !== this.value;
    this.value = value;
    if (this.bar) this.bar.update(value, { status });
    else if ((value === this.total && changed) || Date.now() - this.lastLine > 10_000) {
      this.lastLine = Date.now();
      process.stderr.write(`${this.label} ${value}/${this.total} ${status}\n`);
    }
  }

  /**
   * A phase outside the counted steps (e.g. the final evaluation): a line when it starts
   * (`force`), and at most every 10 s while it reports progress.
   */
  phase(what: string, force = true): void {
    if (this.bar) this.bar.update(this.value, { status: what });
    else if (force || Date.now() - this.lastLine > 10_000) {
      this.lastLine = Date.now();
      process.stderr.write(`${this.label}: ${what}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
