/** An error the user caused (bad flag, bad file): printed as one line, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function usage(condition: unknown, message: string): asserts condition {
  if (!condition) throw new UsageError(message);
}

/** What the system calls that fail on a full, read-only or wrong-type path mean, in words. */
const ERRNO_WORDS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  ENOENT: 'no such file or folder',
  EEXIST: 'it already exists',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  ENAMETOOLONG: 'file name too long',
};

/** File-system failures that are the user's environment, not a bug: one line, exit 2. */
export function isEnvIoError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in ERRNO_WORDS;
}

/** "cannot write runs/a/metrics.jsonl: no space left on device (ENOSPC)". */
export function ioErrorLine(action: string, path: string | undefined, err: NodeJS.ErrnoException): string {
  const code = err.code ?? 'EIO';
  return `cannot ${action}${path ? ` ${path}` : ''}: ${ERRNO_WORDS[code] ?? err.message.split('\n')[0]} (${code})`;
}

/** Wraps a file-system error as a UsageError naming the path and the real cause. */
export function ioError(action: string, path: string, err: unknown): Error {
  if (err instanceof UsageError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return err as Error;
  return new UsageError(ioErrorLine(action, path, e));
}
