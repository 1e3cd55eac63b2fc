import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { OutputTail } from './output-tail.js';
import {
  runEnv, runStopper, type ProcessExit, type ProcessSpec, type RunningProcess,
} from './process-group.js';
import { parseGuardEvent, type GuardEvent, type GuardExit } from './run-guard-events.js';
import { formatGuardCommand, type GuardCommand } from './run-guard-state.js';
import { killProcessesWithTokens, RUN_TOKEN_ENV } from './run-token-sweep.js';
import { signalQuietly } from './signal.js';

/**
 * The worker's side of the run guard (run-guard-main.ts): one guard process per worker, which
 * starts the worker's process runs and kills their groups when the worker is gone or frozen.
 */
export interface RunGuard {
  /** The lease may have expired `remainingMs` from now (by this worker's monotonic clock). */
  setDeadline(remainingMs: number): void;
  /** A run started by the guard: spawn costs the worker's event loop nothing. */
  startProcess(spec: ProcessSpec, clock: Clock, logger: Logger): RunningProcess;
  close(): void;
}

/** A guard that restarts at most this often, so a guard that cannot start does not spin. */
const RESPAWN_DELAY_MS = 1_000;
/**
 * After a guard's death its runs are looked for by token twice, this far apart: a run the guard
 * was spawning as it died may be between its fork and its exec at the first look, without its
 * environment yet.
 */
const SWEEP_AGAIN_MS = 250;

/** Faults a test may ask a guard to have. */
export interface RunGuardOptions {
  /** The guard SIGKILLs itself right after spawning a run, before it reports the pid. */
  readonly dieAfterSpawn?: boolean;
}

/** Compiled code runs from dist/worker/executor; from the sources (tests) the build's copy is used. */
function guardEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const isCompiled = here.includes(join('dist', 'worker'));
  const entry = isCompiled ? join(here, 'run-guard-main.js') : join(here, '..', '..', 'dist', 'worker', 'executor', 'run-guard-main.js');
  if (!existsSync(entry)) throw new Error(`run guard ${entry} is missing: run \`npm run build\``);
  return entry;
}

interface Refable {
  ref(): void;
  unref(): void;
}

/** What one run started through a guard hears from it. */
interface GuardedRun {
  onPid(pid: number): void;
  onOutput(bytes: Buffer): void;
  onExit(exit: GuardExit): void;
  /** Marks the run's processes in their environment (run-token-sweep.ts). */
  readonly token: string;
  /** The run's group, if the guard told its pid. */
  group(): number | undefined;
  /**
   * The guard died before telling this run's end; its group and the processes carrying its token
   * have been killed, and `wasFound` tells whether any carried it.
   */
  onGuardLost(wasFound: boolean): void;
}

/** One guard process and the runs it started. */
interface GuardInstance {
  readonly child: ChildProcess;
  readonly runs: Map<number, GuardedRun>;
  /** Keeps the worker's event loop alive while runs are live, as their own processes would. */
  readonly holdLoop: (isHeld: boolean) => void;
  /** False once its event pipe ended: the guard is gone. */
  isAlive: boolean;
}

export function startRunGuard(logger: Logger, options: RunGuardOptions = {}): RunGuard {
  const entry = guardEntry();
  // Marks this worker's runs (with the run's id) in their environment: see run-token-sweep.ts.
  const tokenBase = randomUUID();
  let deadlineAtNs: bigint | null = null;
  let current: GuardInstance | undefined;
  let isClosed = false;
  let nextRunId = 1;

  const send = (instance: GuardInstance | undefined, command: GuardCommand): void => {
    const stdin = instance?.child.stdin;
    if (instance?.isAlive !== true || stdin?.writable !== true) return;
    stdin.write(formatGuardCommand(command));
  };

  const onEvent = (instance: GuardInstance, event: GuardEvent): void => {
    const run = instance.runs.get(event.id);
    if (run === undefined) return;
    if ('pid' in event) run.onPid(event.pid);
    else if ('out' in event) run.onOutput(Buffer.from(event.out, 'base64'));
    else {
      instance.runs.delete(event.id);
      if (instance.runs.size === 0) instance.holdLoop(false);
      run.onExit(event.exit);
    }
  };

  const launch = (): void => {
    const started = spawn(process.execPath, [entry, ...(options.dieAfterSpawn === true ? ['--die-after-spawn'] : [])], {
      detached: true, stdio: ['pipe', 'ignore', 'inherit', 'pipe'],
    });
    const eventPipe = started.stdio[3] as (Readable & Partial<Refable>) | null;
    const holdLoop = (isHeld: boolean): void => {
      if (isHeld) eventPipe?.ref?.();
      else eventPipe?.unref?.();
    };
    const instance: GuardInstance = { child: started, runs: new Map(), holdLoop, isAlive: true };
    current = instance;
    started.stdin?.on('error', () => {});
    started.once('error', (err) => logger.error({ err }, 'run guard could not start'));
    const lines = eventPipe === null ? undefined : createInterface({ input: eventPipe });
    lines?.on('line', (line) => {
      const event = parseGuardEvent(line);
      if (event !== null) onEvent(instance, event);
    });
    // Only the guard holds the pipe's other end (the runs do not inherit it): its end, after every
    // event the guard wrote was read, is the guard's death.
    const lost = (): void => {
      if (!instance.isAlive) return;
      instance.isAlive = false;
      const runs = [...instance.runs.values()];
      instance.runs.clear();
      holdLoop(false);
      if (runs.length === 0) return;
      logger.error({ runs: runs.length }, 'run guard gone; killing the runs it started');
      // Their groups at once; then, in one look through /proc for all of them, whatever carries
      // their tokens: what left a group, and a run whose pid the guard had not told yet.
      for (const run of runs) {
        const group = run.group();
        if (group !== undefined) signalQuietly(-group, 'SIGKILL');
      }
      const tokens = new Set(runs.map((run) => run.token));
      const found = killProcessesWithTokens(tokens);
      setTimeout(() => {
        for (const token of killProcessesWithTokens(tokens)) found.add(token);
        for (const run of runs) run.onGuardLost(found.has(run.token));
      }, SWEEP_AGAIN_MS).unref();
    };
    if (lines === undefined) lost();
    else lines.once('close', lost);
    started.once('exit', (code, signal) => {
      if (isClosed) return;
      // Without a guard no process run can start and a frozen worker's runs would outlive its
      // lease: start another, and hand it the deadline the last one knew.
      logger.error({ code, signal }, 'run guard exited; restarting it');
      setTimeout(() => {
        if (isClosed) return;
        launch();
        if (deadlineAtNs !== null) send(current, { kind: 'deadline', atNs: deadlineAtNs });
      }, RESPAWN_DELAY_MS).unref();
    });
    // The guard must not keep the worker's event loop alive on its own.
    started.unref();
    (started.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    holdLoop(false);
  };
  launch();

  const startProcess = (spec: ProcessSpec, clock: Clock, runLogger: Logger): RunningProcess => {
    const instance = current;
    const id = nextRunId++;
    const token = `${tokenBase}.${id}`;
    const tail = new OutputTail(spec.outputTailBytesMax);
    let pid: number | undefined;
    let hasExited = false;
    const stopper = runStopper(spec, clock, runLogger, () => pid, (signal) => {
      if (!hasExited) send(instance, { kind: 'signal', id, signal });
    });
    let resolveExit: (exit: ProcessExit) => void = () => {};
    const exited = new Promise<ProcessExit>((resolve) => { resolveExit = resolve; });
    const finish = (exitCode: number | null, signal: string | null, spawnError?: string): void => {
      if (hasExited) return;
      hasExited = true;
      stopper.ended();
      const stopCause = stopper.cause();
      resolveExit({
        exitCode, signal, outputTail: tail.text(),
        ...(stopCause === undefined ? {} : { stopCause }),
        ...(spawnError === undefined ? {} : { spawnError }),
      });
    };
    const running: RunningProcess = {
      get pid() { return pid; }, exited, stop: stopper.stop, outputTail: () => tail.text(),
    };
    if (instance?.isAlive !== true) {
      finish(null, null, 'no run guard to start it (restarting)');
      return running;
    }
    instance.holdLoop(true);
    instance.runs.set(id, {
      onPid: (started) => { pid = started; },
      onOutput: (bytes) => tail.push(bytes),
      onExit: (exit) => finish(exit.code, exit.signal, exit.error),
      token,
      group: () => pid,
      onGuardLost: (wasFound) => {
        if (pid === undefined && !wasFound) {
          // Nothing carried its token: the guard died before it spawned the run (or the run
          // ended at once, unreported).
          finish(null, null, 'the run guard exited before reporting the start; no process of the run was found');
          return;
        }
        if (pid === undefined) runLogger.error('killed a run its dead guard had started without reporting it');
        finish(null, 'SIGKILL');
      },
    });
    send(instance, {
      kind: 'spawn',
      request: {
        id, argv: spec.argv, env: { ...runEnv(spec), [RUN_TOKEN_ENV]: token }, tailBytesMax: spec.outputTailBytesMax,
        ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      },
    });
    return running;
  };

  return {
    setDeadline(remainingMs) {
      // Taken now, as an absolute CLOCK_MONOTONIC instant: a worker frozen before the write
      // sends a deadline already past, never one moved later.
      deadlineAtNs = process.hrtime.bigint() + BigInt(Math.max(0, Math.floor(remainingMs))) * 1_000_000n;
      send(current, { kind: 'deadline', atNs: deadlineAtNs });
    },
    startProcess,
    close() {
      isClosed = true;
      current?.child.stdin?.end();
    },
  };
}
