import { readdirSync, readFileSync } from 'node:fs';
import { signalQuietly } from './signal.js';

/**
 * Finds a run's processes without knowing their pids. Every process run carries a token in its
 * environment, which what it starts inherits. A run whose pid a dying guard never reported, and a
 * job's process that left its group (setsid), are found by that token through /proc and killed:
 * by the worker after its guard died, by the guard at the lease deadline and at the worker's
 * death. One pass reads every process's environment, so it is kept to those rare moments.
 * Processes of another user, or that replaced their environment, are out of reach: the process
 * groups remain the main way a run is stopped.
 */
export const RUN_TOKEN_ENV = 'ETCRON_RUN_TOKEN';

/** A sweep repeats while it still finds processes (they may fork meanwhile), at most this often. */
const SWEEP_ROUNDS_MAX = 10;

/** The live processes whose run token is one of `tokens`, with the token each carries. */
export function processesWithToken(tokens: ReadonlySet<string>, procDir = '/proc'): { pid: number; token: string }[] {
  const found: { pid: number; token: string }[] = [];
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`${procDir}/${entry}/environ`);
    } catch {
      continue; // gone, or another user's
    }
    const token = envValue(environ, RUN_TOKEN_ENV);
    if (token !== undefined && tokens.has(token)) found.push({ pid: Number(entry), token });
  }
  return found;
}

/** The value of `name` in a NUL-separated environment block (as /proc shows it), if it is there. */
export function envValue(environ: Buffer, name: string): string | undefined {
  const prefix = Buffer.from(`${name}=`);
  let at = environ.indexOf(prefix);
  // Only at the start of an entry: not inside another's name or value.
  while (at > 0 && environ[at - 1] !== 0) at = environ.indexOf(prefix, at + 1);
  if (at < 0) return undefined;
  const from = at + prefix.length;
  const end = environ.indexOf(0, from);
  return environ.toString('utf8', from, end < 0 ? environ.length : end);
}

/** The process group of `pid`, or undefined once it is gone. */
function processGroupOf(pid: number): number | undefined {
  try {
    // After the command's closing parenthesis: state, ppid, pgrp.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    return Number.isInteger(pgrp) && pgrp > 0 ? pgrp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs every process that carries one of `tokens`, and each group one of them leads (a run's
 * leader is its group's leader). Returns the tokens some process carried.
 */
export function killProcessesWithTokens(tokens: ReadonlySet<string>): Set<string> {
  const carried = new Set<string>();
  if (tokens.size === 0) return carried;
  for (let round = 0; round < SWEEP_ROUNDS_MAX; round++) {
    // A process SIGKILLed a moment ago may still show its environment for an instant.
    const processes = processesWithToken(tokens);
    if (processes.length === 0) break;
    for (const { pid, token } of processes) {
      carried.add(token);
      if (processGroupOf(pid) === pid) signalQuietly(-pid, 'SIGKILL');
      signalQuietly(pid, 'SIGKILL');
    }
  }
  return carried;
}
