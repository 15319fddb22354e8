import { linkSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError, ioError } from './errors.js';
import { processAlive } from './io.js';

/**
 * One writer per run folder: `.flowtune.lock` holds the writer's pid, host and start time.
 * It is created with link(2), which fails if the file exists, so two processes can never
 * both hold it; its content is complete before it appears. A lock whose process is gone (a
 * kill -9, a crash, a reboot) is taken over with a one-line notice; a lock held by a live
 * process, or by another host (whose processes we cannot see), refuses with exit 2.
 */
export const LOCK_FILE = '.flowtune.lock';

interface LockInfo {
  pid: number;
  host: string;
  /** The process's start time (Linux /proc), so a reused pid is not mistaken for the holder. */
  procStart: string | null;
  since: string;
  command: string;
}

const held = new Set<string>();
let hooked = false;

function procStart(pid: number): string | null {
  try {
    // field 22 of /proc/PID/stat, counted after the parenthesized command name
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function readLock(file: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8'));
    return typeof v?.pid === 'number' && typeof v?.host === 'string' ? (v as LockInfo) : null;
  } catch {
    return null;
  }
}

function holderAlive(h: LockInfo): boolean {
  if (!processAlive(h.pid)) return false;
  const start = procStart(h.pid);
  return !(h.procStart && start && start !== h.procStart);
}

/**
 * Who holds the run folder's lock, when a live process on this host or any process on another
 * host does (as acquireRunLock's refusal names it); null for no lock or a stale one.
 */
export function liveLockHolder(dir: string): string | null {
  const h = readLock(join(dir, LOCK_FILE));
  if (!h || (h.host === hostname() && !holderAlive(h))) return null;
  return `pid ${h.pid} on ${h.host}, since ${h.since}${h.command ? `: flowtune ${h.command}` : ''}`;
}

/** Takes the run folder's lock or throws a UsageError naming its holder. Released at exit. */
export function acquireRunLock(dir: string, notice: (line: string) => void = (l) => process.stderr.write(`flowtune: ${l}\n`)): void {
  const file = join(dir, LOCK_FILE);
  if (held.has(file)) return;
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    procStart: procStart(process.pid),
    since: new Date().toISOString(),
    command: process.argv.slice(2).join(' '),
  };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(me) + '\n');
  } catch (err) {
    throw ioError('write', tmp, err);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('create lock', file, err);
      }
      const h = readLock(file);
      const who = h ? `pid ${h.pid} on ${h.host}, since ${h.since}${h.command ? `: flowtune ${h.command}` : ''}` : 'an unreadable lock';
      if (h && h.host !== me.host)
        throw new UsageError(`${dir} is in use by another flowtune process (${who}); if that process is gone, delete ${file}`);
      if (h && holderAlive(h))
        throw new UsageError(`${dir} is in use by another flowtune process (${who}); wait for it to finish or choose another --out`);
      if (attempt > 0) throw new UsageError(`${dir} is in use by another flowtune process that just took it over; try again`);
      // Stale: move it aside under our own name, and only discard it if it is still the
      // stale one we judged (another process may have replaced it meanwhile).
      const aside = `${file}.stale-${process.pid}`;
      try {
        renameSync(file, aside);
      } catch {
        continue; // gone already: try to take it
      }
      const moved = readLock(aside);
      if (moved && h && moved.pid !== h.pid) {
        try {
          linkSync(aside, file); // not the stale lock after all: put it back
        } catch {
          // someone else holds it now; either way it is not ours
        }
        rmSync(aside, { force: true });
        throw new UsageError(
          `${dir} is in use by another flowtune process (pid ${moved.pid} on ${moved.host}); wait for it to finish or choose another --out`,
        );
      }
      rmSync(aside, { force: true });
      notice(`${dir}: taking over the lock of ${who}, which is no longer running`);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  held.add(file);
  if (!hooked) {
    hooked = true;
    process.on('exit', releaseRunLocks);
    // Ctrl-C / kill: release and exit with the conventional status (128 + signal number)
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(143));
  }
}

/** Removes the locks this process holds (only if they are still ours). */
export function releaseRunLocks(): void {
  for (const file of held) {
    if (readLock(file)?.pid === process.pid) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
  }
  held.clear();
}
