import { spawn, type ChildProcess } from 'node:child_process';
import type { GuardEvent } from './run-guard-events.js';
import type { GroupCommand, GroupSignal, SpawnRequest } from './run-guard-state.js';
import { OutputTail } from './output-tail.js';
import { RUN_TOKEN_ENV } from './run-token-sweep.js';
import { signalQuietly } from './signal.js';

/** Output is sent to the worker at most this often per run (its live tail lags at most this). */
const OUTPUT_FLUSH_MS = 200;
/** Output still arriving after exit is collected for at most this long. */
const OUTPUT_DRAIN_MS_MAX = 300;

/**
 * The guard's side of a run: it spawns the run in a process group of its own (detached) and
 * tracks the group in the same synchronous step, so no instant exists in which the group lives
 * and the guard does not know it. The worker's death closes the guard's stdin and the guard kills
 * every group it tracks; nothing per run watches the worker any more.
 */
export class RunSpawner {
  private readonly live = new Map<number, ChildProcess>();
  /** The run token of each tracked group, for what left the group (run-token-sweep.ts). */
  private readonly tokens = new Map<number, string>();

  constructor(
    private readonly track: (command: GroupCommand) => void,
    private readonly send: (event: GuardEvent) => void,
    /** Called between a spawn and its report (a fault a test injects there). */
    private readonly afterSpawn: () => void = () => {},
  ) {}

  start(request: SpawnRequest): void {
    const [program, ...args] = request.argv;
    if (program === undefined) return;
    let child: ChildProcess;
    try {
      child = spawn(program, args, {
        detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: request.env,
        ...(request.cwd === undefined ? {} : { cwd: request.cwd }),
      });
    } catch (err) {
      this.send({ id: request.id, exit: { code: null, signal: null, error: errorText(err) } });
      return;
    }
    const { id } = request;
    const pid = child.pid;
    this.afterSpawn();
    if (pid !== undefined) {
      // The pid goes out first: the run is already executing, and until the worker has its pid a
      // death of this guard leaves the worker unable to kill it.
      this.send({ id, pid });
      // Its token is known before the group is tracked: tracking may kill it at once (a deadline
      // already past), and that kill looks for the run's processes by token too.
      const token = request.env[RUN_TOKEN_ENV];
      if (token !== undefined) this.tokens.set(pid, token);
      this.track({ kind: 'add', pgid: pid });
      this.live.set(id, child);
    }
    const pending = new OutputTail(request.tailBytesMax);
    let flushTimer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      clearTimeout(flushTimer);
      flushTimer = undefined;
      const text = pending.bytes();
      pending.clear();
      if (text.length > 0) this.send({ id, out: text.toString('base64') });
    };
    const onOutput = (chunk: Buffer): void => {
      pending.push(chunk);
      flushTimer ??= setTimeout(flush, OUTPUT_FLUSH_MS);
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    let isDone = false;
    const finish = (code: number | null, signal: string | null, error?: string): void => {
      if (isDone) return;
      isDone = true;
      this.live.delete(id);
      if (pid !== undefined) {
        // What the job left behind in its group goes now (the leader was reaped a moment ago; its
        // pid cannot have been handed out again since: Linux allocates pids cyclically).
        signalQuietly(-pid, 'SIGKILL');
        this.track({ kind: 'remove', pgid: pid });
        this.tokens.delete(pid);
      }
      const end = (): void => {
        flush();
        this.send({ id, exit: { code, signal, ...(error === undefined ? {} : { error }) } });
      };
      if (pid === undefined) {
        end();
        return;
      }
      const drainTimer = setTimeout(end, OUTPUT_DRAIN_MS_MAX);
      child.once('close', () => {
        clearTimeout(drainTimer);
        end();
      });
    };
    child.once('error', (err) => {
      if (pid === undefined) finish(null, null, err.message);
    });
    child.once('exit', (code, signal) => finish(code, signal));
  }

  /** The run tokens of these groups (those the guard knows). */
  tokensOf(groups: readonly number[]): Set<string> {
    const found = new Set<string>();
    for (const pgid of groups) {
      const token = this.tokens.get(pgid);
      if (token !== undefined) found.add(token);
    }
    return found;
  }

  /** A run's group, while its leader lives: a stop never reaches a group that may be gone. */
  signal(id: number, signal: GroupSignal): void {
    const child = this.live.get(id);
    if (child?.pid !== undefined) signalQuietly(-child.pid, signal);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
