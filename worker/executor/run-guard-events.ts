import { parseJsonObject } from '../../shared/json.js';

/**
 * The guard → worker side of the run guard's protocol, one JSON object a line on the guard's
 * fd 3: a run's process id once spawned, its output (coalesced, at most its tail bound per
 * message), and its end. Output always comes before the end of its run.
 */
export type GuardEvent =
  | { readonly id: number; readonly pid: number }
  | { readonly id: number; readonly out: string }
  | { readonly id: number; readonly exit: GuardExit };

export interface GuardExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** The spawn failed (no such program, a bad cwd, too many processes): nothing ran. */
  readonly error?: string;
}

export function formatGuardEvent(event: GuardEvent): string {
  return `${JSON.stringify(event)}\n`;
}

export function parseGuardEvent(line: string): GuardEvent | null {
  const value = parseJsonObject(line);
  if (value === undefined) return null;
  const { id, pid, out, exit } = value;
  if (typeof id !== 'number') return null;
  if (typeof pid === 'number') return { id, pid };
  if (typeof out === 'string') return { id, out };
  if (typeof exit !== 'object' || exit === null) return null;
  const { code, signal, error } = exit as Record<string, unknown>;
  if (code !== null && typeof code !== 'number') return null;
  if (signal !== null && typeof signal !== 'string') return null;
  return { id, exit: { code, signal, ...(typeof error === 'string' ? { error } : {}) } };
}
