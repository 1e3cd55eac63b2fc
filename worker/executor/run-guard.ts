import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log.js';
import { formatGuardCommand, type GuardCommand } from './run-guard-state.js';

/** The worker's side of the run guard (run-guard-main.ts): one guard process per worker. */
export interface RunGuard {
  /** The lease may have expired `remainingMs` from now (by this worker's monotonic clock). */
  setDeadline(remainingMs: number): void;
  track(pgid: number): void;
  untrack(pgid: number): void;
  close(): void;
}

/** A guard that restarts at most this often, so a guard that cannot start does not spin. */
const RESPAWN_DELAY_MS = 1_000;

/** Compiled code runs from dist/worker/executor; from the sources (tests) the build's copy is used. */
function guardEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const isCompiled = here.includes(join('dist', 'worker'));
  const entry = isCompiled ? join(here, 'run-guard-main.js') : join(here, '..', '..', 'dist', 'worker', 'executor', 'run-guard-main.js');
  if (!existsSync(entry)) throw new Error(`run guard ${entry} is missing: run \`npm run build\``);
  return entry;
}

export function startRunGuard(logger: Logger): RunGuard {
  const entry = guardEntry();
  const groups = new Set<number>();
  let deadlineAtNs: bigint | null = null;
  let child: ChildProcess | undefined;
  let isClosed = false;

  const send = (command: GuardCommand): void => {
    if (child?.stdin?.writable === true) child.stdin.write(formatGuardCommand(command));
  };

  const launch = (): void => {
    const started = spawn(process.execPath, [entry], { detached: true, stdio: ['pipe', 'ignore', 'inherit'] });
    child = started;
    started.stdin?.on('error', () => {});
    started.once('error', (err) => logger.error({ err }, 'run guard could not start'));
    started.once('exit', (code, signal) => {
      if (isClosed) return;
      // Without a guard a frozen worker's runs would outlive its lease: start another, and hand
      // it everything the last one knew.
      logger.error({ code, signal }, 'run guard exited; restarting it');
      setTimeout(() => {
        if (isClosed) return;
        launch();
        if (deadlineAtNs !== null) send({ kind: 'deadline', atNs: deadlineAtNs });
        for (const pgid of groups) send({ kind: 'add', pgid });
      }, RESPAWN_DELAY_MS).unref();
    });
    // The guard must not keep the worker's event loop alive on its own.
    started.unref();
    (started.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  };
  launch();

  return {
    setDeadline(remainingMs) {
      // Taken now, as an absolute CLOCK_MONOTONIC instant: a worker frozen before the write
      // sends a deadline already past, never one moved later.
      deadlineAtNs = process.hrtime.bigint() + BigInt(Math.max(0, Math.floor(remainingMs))) * 1_000_000n;
      send({ kind: 'deadline', atNs: deadlineAtNs });
    },
    track(pgid) {
      groups.add(pgid);
      send({ kind: 'add', pgid });
    },
    untrack(pgid) {
      groups.delete(pgid);
      send({ kind: 'remove', pgid });
    },
    close() {
      isClosed = true;
      child?.stdin?.end();
    },
  };
}
