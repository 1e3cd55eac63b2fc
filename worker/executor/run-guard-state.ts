/**
 * The decisions of the run guard (run-guard-main.ts), kept free of I/O so they can be tested as
 * they are: which process groups to kill, and when to look again. Times are CLOCK_MONOTONIC in
 * nanoseconds, which every process on a Linux host reads alike (process.hrtime.bigint()).
 */
export type GuardCommand =
  | { readonly kind: 'deadline'; readonly atNs: bigint }
  | { readonly kind: 'add'; readonly pgid: number }
  | { readonly kind: 'remove'; readonly pgid: number };

/** One line of the worker → guard protocol: `D <ns>`, `A <pgid>` or `R <pgid>`. */
export function parseGuardLine(line: string): GuardCommand | null {
  const match = /^([DAR]) (\d+)$/.exec(line.trim());
  if (match === null) return null;
  const [, kind, value = ''] = match;
  if (kind === 'D') return { kind: 'deadline', atNs: BigInt(value) };
  const pgid = Number(value);
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return null;
  return kind === 'A' ? { kind: 'add', pgid } : { kind: 'remove', pgid };
}

export function formatGuardCommand(command: GuardCommand): string {
  switch (command.kind) {
    case 'deadline': return `D ${command.atNs}\n`;
    case 'add': return `A ${command.pgid}\n`;
    case 'remove': return `R ${command.pgid}\n`;
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

  apply(command: GuardCommand): void {
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
