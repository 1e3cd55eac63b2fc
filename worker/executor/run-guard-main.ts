import { createInterface } from 'node:readline';
import { GuardState, parseGuardLine } from './run-guard-state.js';

/**
 * The run guard: a process beside each worker, in its own process group, that SIGKILLs the
 * process groups of the worker's runs once the worker's lease may have expired, even when the
 * worker itself cannot (SIGSTOP, a long GC pause, a frozen event loop). The worker sends its
 * lease deadline after every renewal and the groups it starts and reaps (run-guard-state.ts).
 * When the worker's pipe closes, the worker is gone: every group still tracked is killed.
 */
const state = new GuardState();
let timer: NodeJS.Timeout | undefined;

function killGroups(groups: readonly number[]): void {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // ESRCH: the group has already ended.
    }
  }
}

function check(): void {
  clearTimeout(timer);
  timer = undefined;
  const decision = state.check(process.hrtime.bigint());
  killGroups(decision.kill);
  if (decision.nextCheckNs === null) return;
  const delayMs = Number((decision.nextCheckNs - process.hrtime.bigint()) / 1_000_000n);
  // Timers may fire late, never early; a late check still kills, only later.
  timer = setTimeout(check, Math.max(0, delayMs) + 1);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = parseGuardLine(line);
  if (command === null) return;
  state.apply(command);
  check();
});
lines.on('close', () => {
  clearTimeout(timer);
  killGroups(state.drain());
  process.exit(0);
});
// The worker's signals (Ctrl-C in a terminal) are for the worker; the guard ends with its pipe.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
