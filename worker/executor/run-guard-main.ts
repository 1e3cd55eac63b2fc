import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { formatGuardEvent, type GuardEvent } from './run-guard-events.js';
import { RunSpawner } from './run-guard-spawner.js';
import { GuardState, parseGuardLine, type GroupCommand } from './run-guard-state.js';
import { killProcessesWithTokens } from './run-token-sweep.js';
import { signalQuietly } from './signal.js';

/**
 * The run guard: a process beside each worker, in its own process group, that starts the worker's
 * process runs and SIGKILLs their process groups once the worker's lease may have expired, even
 * when the worker itself cannot (SIGSTOP, a long GC pause, a frozen event loop), and when the
 * worker is gone (its pipe closed, even after a SIGKILL). The worker sends its lease deadline after
 * every renewal and the runs to start (run-guard-state.ts); the guard answers on fd 3 with each
 * run's pid, output and end (run-guard-events.ts).
 */
const state = new GuardState();
let timer: NodeJS.Timeout | undefined;

// fd 3 is a pipe to the worker. A socket over it writes without blocking: a frozen worker that
// stops reading must not freeze the guard (its messages wait in memory, at most a tail per run).
const events = new Socket({ fd: 3, readable: false, writable: true });
events.on('error', () => {});
const send = (event: GuardEvent): void => {
  events.write(formatGuardEvent(event));
};

/** SIGKILLs the runs' groups, then whatever of those runs left its group (by their tokens). */
function killGroups(groups: readonly number[]): void {
  for (const pgid of groups) signalQuietly(-pgid, 'SIGKILL');
  if (groups.length > 0) killProcessesWithTokens(spawner.tokensOf(groups));
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

/**
 * Every group is checked against the deadline as it is added: a burst of spawns (each holds this
 * loop for a millisecond or two) delays a deadline kill by one spawn at most.
 */
function applyGroupCommand(command: GroupCommand): void {
  state.apply(command);
  check();
}

// A fault for tests (run-guard.ts's dieAfterSpawn): the guard's death in the instant between a
// spawn and its report, when the worker does not know the run's pid.
const dieAfterSpawn = process.argv.includes('--die-after-spawn')
  ? (): void => { process.kill(process.pid, 'SIGKILL'); }
  : undefined;
const spawner = new RunSpawner(applyGroupCommand, send, dieAfterSpawn);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = parseGuardLine(line);
  if (command === null) return;
  if (command.kind === 'spawn') spawner.start(command.request);
  else if (command.kind === 'signal') spawner.signal(command.id, command.signal);
  else applyGroupCommand(command);
});
lines.on('close', () => {
  clearTimeout(timer);
  killGroups(state.drain());
  process.exit(0);
});
// The worker's signals (Ctrl-C in a terminal) are for the worker; the guard ends with its pipe.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
