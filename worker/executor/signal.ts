/**
 * Sends `signal` to a process (`target` > 0) or a process group (`-pgid`) that may be gone or not
 * ours: ESRCH (already ended) and EPERM (another user's) are not errors to anyone killing a run.
 */
export function signalQuietly(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch {
    // ESRCH or EPERM: nothing of ours left to signal.
  }
}
