import { spawn, type ChildProcess } from 'node:child_process';
import type { Clock, Timer } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { OutputTail } from './output-tail.js';
import { signalQuietly } from './signal.js';

/**
 * Runs the job in-process (for a RunManager without a run guard; a worker's runs go through its
 * guard, run-guard.ts) in its own process group (detached) through a small sh wrapper. The wrapper
 * keeps a watcher on its stdin, a pipe from the worker: when the worker dies (even by SIGKILL) the
 * pipe closes, and the watcher SIGKILLs the whole group, so a job never outlives its worker
 * unnoticed. After a normal exit the worker closes the pipe too, which reaps processes the job
 * left behind.
 */
const WRAPPER = [
  'exec 3<&0 0</dev/null',
  '{ cat <&3 >/dev/null 2>&1; kill -KILL 0; } &',
  'exec 3<&-',
  '"$@"',
].join('\n');

export type StopCause = 'timeout' | 'killed' | 'lease-lost' | 'replaced' | 'shutdown';

export interface ProcessSpec {
  /** Program and arguments; a shell command is ['/bin/sh', '-c', command]. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly timeoutMs?: number;
  readonly killGraceMs: number;
  readonly outputTailBytesMax: number;
}

export interface ProcessExit {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Set when we stopped the process (timeout, kill request, lease loss). */
  readonly stopCause?: StopCause;
  readonly outputTail: string;
  readonly spawnError?: string;
  /** Set for a run made in-process (an HTTP request): it has no exit code, only this outcome. */
  readonly inProcess?: { readonly failure?: string; readonly httpStatus?: number };
}

export interface RunningProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  /** The output tail so far, for live progress writes. */
  outputTail(): string;
  /** SIGTERM the group, then SIGKILL after `graceMs` (0: SIGKILL at once). Idempotent. */
  stop(cause: StopCause, graceMs: number): void;
}

/** Output still arriving after exit is collected for at most this long. */
const OUTPUT_DRAIN_MS_MAX = 300;

export function startProcess(spec: ProcessSpec, clock: Clock, logger: Logger): RunningProcess {
  const [program, ...args] = spec.argv;
  if (program === undefined) throw new Error('empty argv');
  const tail = new OutputTail(spec.outputTailBytesMax);
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', WRAPPER, 'etcron-run', program, ...args], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: runEnv(spec),
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      pid: undefined, exited: Promise.resolve({ exitCode: null, signal: null, outputTail: '', spawnError: message }),
      outputTail: () => '', stop: () => {},
    };
  }
  child.stdout?.on('data', (chunk: Buffer) => tail.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));
  child.stdin?.on('error', () => {}); // EPIPE once the group is gone
  const pid = child.pid;
  const stopper = runStopper(spec, clock, logger, () => pid, (signal) => {
    if (pid !== undefined) signalQuietly(-pid, signal);
  });
  let hasExited = false;

  const exited = new Promise<ProcessExit>((resolve) => {
    let spawnError: string | undefined;
    child.once('error', (err) => {
      spawnError = err.message;
      if (pid === undefined) finish(null, null);
    });
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      if (hasExited) return;
      hasExited = true;
      stopper.ended();
      // Closing the wrapper's stdin makes its watcher kill whatever the job left in the group.
      child.stdin?.end();
      const drained = (): void => {
        const stopCause = stopper.cause();
        resolve({
          exitCode, signal, outputTail: tail.text(),
          ...(stopCause === undefined ? {} : { stopCause }),
          ...(spawnError === undefined ? {} : { spawnError }),
        });
      };
      const drainTimer = clock.setTimer(OUTPUT_DRAIN_MS_MAX, drained);
      child.once('close', () => {
        drainTimer.cancel();
        drained();
      });
    };
    child.once('exit', finish);
  });
  return { pid, exited, stop: stopper.stop, outputTail: () => tail.text() };
}

/** The environment of a run: the worker's PATH and HOME, then the job's and etcron's variables. */
export function runEnv(spec: ProcessSpec): Record<string, string> {
  const { PATH = '/usr/bin:/bin', HOME = '/' } = process.env;
  return { PATH, HOME, ...spec.env };
}

export interface RunStopper {
  /** SIGTERM the group, then SIGKILL after `graceMs` (0: SIGKILL at once). Idempotent. */
  stop(cause: StopCause, graceMs: number): void;
  /** Why the run was stopped, if it was. */
  cause(): StopCause | undefined;
  /** The run ended: its timers go. */
  ended(): void;
}

/** The timeout and the stop requests of one run, whose group `signalGroup` signals. */
export function runStopper(
  spec: ProcessSpec, clock: Clock, logger: Logger, pid: () => number | undefined,
  signalGroup: (signal: 'SIGTERM' | 'SIGKILL') => void,
): RunStopper {
  let stopCause: StopCause | undefined;
  let killTimer: Timer | undefined;
  const stop = (cause: StopCause, graceMs: number): void => {
    if (stopCause !== undefined && graceMs > 0) return;
    stopCause ??= cause;
    logger.debug({ pid: pid(), cause, graceMs }, 'stopping run process group');
    if (graceMs <= 0) {
      signalGroup('SIGKILL');
      return;
    }
    signalGroup('SIGTERM');
    killTimer = clock.setTimer(graceMs, () => signalGroup('SIGKILL'));
  };
  const timeoutTimer = spec.timeoutMs === undefined
    ? undefined
    : clock.setTimer(spec.timeoutMs, () => stop('timeout', spec.killGraceMs));
  return {
    stop,
    cause: () => stopCause,
    ended() {
      timeoutTimer?.cancel();
      killTimer?.cancel();
    },
  };
}
