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
