/** Thrown when an invariant is broken: a programming error, never an operating condition. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Asserts stay on in production: a broken invariant must stop the process, not corrupt data. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertSafeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new AssertionError(`${what} is not a safe integer: ${value}`);
}

/** Exhaustiveness helper for switches over unions. */
export function unreachable(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
