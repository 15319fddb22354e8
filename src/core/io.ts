import { accessSync, constants, existsSync, mkdirSync, writeFileSync, appendFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { UsageError } from './errors.js';

/**
 * Creates (or reuses) an output folder after checking that it is writable and that it does
 * not already hold the files we are about to write, so an earlier run is never overwritten.
 */
export function prepareOutDir(dir: string, willWrite: string[]): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new UsageError(`cannot write to output folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  for (const f of willWrite) {
    if (existsSync(join(dir, f))) throw new UsageError(`${join(dir, f)} already exists; choose another --out folder`);
  }
}

/** Write to a temporary file and rename, so a reader never sees half a file. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function appendJsonLine(path: string, obj: unknown): void {
  appendFileSync(path, JSON.stringify(obj) + '\n');
}

/** A progress bar on stderr when it is a terminal; otherwise occasional plain lines. */
export class Progress {
  private bar?: cliProgress.SingleBar;
  private lastLine = 0;

  constructor(private readonly total: number, private readonly label: string) {
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
    if (this.bar) this.bar.update(value, { status });
    else if (value === this.total || Date.now() - this.lastLine > 10_000) {
      this.lastLine = Date.now();
      process.stderr.write(`${this.label} ${value}/${this.total} ${status}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
