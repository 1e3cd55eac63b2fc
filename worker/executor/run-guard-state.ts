import { parseJsonObject } from '../../shared/json.js';

/**
 * The decisions of the run guard (run-guard-main.ts), kept free of I/O so they can be tested as
 * they are: which process groups to kill, and when to look again. Times are CLOCK_MONOTONIC in
 * nanoseconds, which every process on a Linux host reads alike (process.hrtime.bigint()).
 */

/** A run for the guard to start: the program, its full environment, and its output bound. */
export interface SpawnRequest {
  /** The worker's number for the run, echoed in the guard's events (run-guard-events.ts). */
  readonly id: number;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly tailBytesMax: number;
}

export type GroupSignal = 'SIGTERM' | 'SIGKILL';

export type GuardCommand =
  | { readonly kind: 'deadline'; readonly atNs: bigint }
  | { readonly kind: 'add'; readonly pgid: number }
  | { readonly kind: 'remove'; readonly pgid: number }
  | { readonly kind: 'spawn'; readonly request: SpawnRequest }
  | { readonly kind: 'signal'; readonly id: number; readonly signal: GroupSignal };

/** The commands that change which groups the guard kills, and when. */
export type GroupCommand = Extract<GuardCommand, { kind: 'deadline' | 'add' | 'remove' }>;

/**
 * One line of the worker → guard protocol: `D <ns>`, `A <pgid>`, `R <pgid>`, `S <json request>`
 * (start a run) or `K <id> SIGTERM|SIGKILL` (signal a run's group while it lives).
 */
export function parseGuardLine(line: string): GuardCommand | null {
  if (line.startsWith('S ')) return parseSpawn(line.slice(2));
  const signal = /^K (\d+) (SIGTERM|SIGKILL)$/.exec(line.trim());
  if (signal !== null) {
    const id = Number(signal[1]);
    if (!Number.isSafeInteger(id)) return null;
    return { kind: 'signal', id, signal: signal[2] as GroupSignal };
  }
  const match = /^([DAR]) (\d+)$/.exec(line.trim());
  if (match === null) return null;
  const [, kind, value = ''] = match;
  if (kind === 'D') return { kind: 'deadline', atNs: BigInt(value) };
  const pgid = Number(value);
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return null;
  return kind === 'A' ? { kind: 'add', pgid } : { kind: 'remove', pgid };
}

function parseSpawn(json: string): GuardCommand | null {
  const value = parseJsonObject(json);
  if (value === undefined) return null;
  const { id, argv, env, cwd, tailBytesMax } = value;
  const isStrings = (v: unknown): v is string[] =>
    Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return null;
  if (!isStrings(argv) || argv.length === 0) return null;
  if (typeof env !== 'object' || env === null) return null;
  if (!Object.values(env).every((v) => typeof v === 'string')) return null;
  if (cwd !== undefined && typeof cwd !== 'string') return null;
  if (typeof tailBytesMax !== 'number' || !(tailBytesMax >= 0)) return null;
  const request: SpawnRequest = {
    id, argv, env: env as Record<string, string>, tailBytesMax,
    ...(cwd === undefined ? {} : { cwd }),
  };
  return { kind: 'spawn', request };
}

export function formatGuardCommand(command: GuardCommand): string {
  switch (command.kind) {
    case 'deadline': return `D ${command.atNs}\n`;
    case 'add': return `A ${command.pgid}\n`;
    case 'remove': return `R ${command.pgid}\n`;
    case 'spawn': return `S ${JSON.stringify(command.request)}\n`;
    case 'signal': return `K ${command.id} ${command.signal}\n`;
  }
}

/**
 * The groups of the worker's live runs and the instant its lease may have ended. A group added
 * after the deadline passed is killed at the next check: the worker may have been frozen between
 * its spawn and its last renewal.
 */
export class GuardState {
  private readonly groups = new Set<number>();
  /** No deadline until the worker sends one: nothing runs before its session exists. */
  private deadlineNs: bigint | null = null;

  apply(command: GroupCommand): void {
    if (command.kind === 'deadline') this.deadlineNs = command.atNs;
    else if (command.kind === 'add') this.groups.add(command.pgid);
    else this.groups.delete(command.pgid);
  }

  /** The groups to SIGKILL now (and forget), or none; and when to check again (ns), if ever. */
  check(nowNs: bigint): { readonly kill: readonly number[]; readonly nextCheckNs: bigint | null } {
    if (this.deadlineNs === null) return { kill: [], nextCheckNs: null };
    if (nowNs < this.deadlineNs) return { kill: [], nextCheckNs: this.deadlineNs };
    const kill = [...this.groups];
    this.groups.clear();
    return { kill, nextCheckNs: null };
  }

  /** Every group still tracked: killed when the worker's pipe closes (the worker is gone). */
  drain(): number[] {
    const all = [...this.groups];
    this.groups.clear();
    return all;
  }
}
