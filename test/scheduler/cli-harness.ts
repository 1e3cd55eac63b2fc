import { spawn, type ChildProcess } from 'node:child_process';
import { ETCRON_BIN } from '../support/etcd-process.js';
import { freePort, waitFor } from '../support/ports.js';

/** Helpers for scheduler tests that drive `bin/etcron` as real child processes (needs `npm run build`). */

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Runs `etcron <args>` to completion, killed after `timeoutMs` so a hang fails the test. */
export function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  timeoutMs = 20_000,
  stdin?: string,
): Promise<CliResult> {
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ETCRON_BIN, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, elapsedMs: Date.now() - startedAt });
    });
    child.stdin.end(stdin ?? '');
  });
}

/** Parses the JSON printed by `-o json`, failing with the CLI's output when it is not JSON. */
export function jsonOf<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`expected JSON (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly apiUrl: string;
  output(): string;
  /** Sends a signal and waits for exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function spawnDaemon(args: readonly string[], ready: RegExp, timeoutMs: number): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [ETCRON_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (c: Buffer): void => {
    output += c.toString();
    if (output.length > 400_000) output = output.slice(-200_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return waitFor(`${args[0] ?? 'daemon'} to start`, () => {
    if (child.exitCode !== null) throw new Error(`exited early (${child.exitCode}):\n${output}`);
    return ready.test(output) ? true : undefined;
  }, timeoutMs).then(
    () => ({ child, output: () => output }),
    (err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    },
  );
}

function killer(child: ChildProcess): (signal?: NodeJS.Signals) => Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
  });
  return async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
}

export async function startMasterProcess(options: {
  readonly endpoint: string;
  readonly id: string;
  readonly leaseTtlSeconds?: number;
  readonly logLevel?: string;
  /** More flags, e.g. --user for a store with auth enabled. */
  readonly extraArgs?: readonly string[];
}): Promise<DaemonProcess> {
  const port = await freePort();
  const { child, output } = await spawnDaemon([
    'master', '--endpoints', options.endpoint, '--api', `127.0.0.1:${port}`, '--id', options.id,
    '--lease-ttl', String(options.leaseTtlSeconds ?? 2), '--log-level', options.logLevel ?? 'info',
    ...(options.extraArgs ?? []),
  ], /serving http:/, 15_000);
  return { child, apiUrl: `http://127.0.0.1:${port}`, output, kill: killer(child) };
}

export async function startWorkerProcess(options: {
  readonly endpoint: string;
  readonly id: string;
  readonly leaseTtlSeconds?: number;
  readonly tags?: string;
  readonly extraArgs?: readonly string[];
}): Promise<DaemonProcess> {
  const args = [
    'worker', '--endpoints', options.endpoint, '--id', options.id, '--lease-ttl', String(options.leaseTtlSeconds ?? 2),
    ...(options.extraArgs ?? []),
  ];
  if (options.tags !== undefined) args.push('--tags', options.tags);
  const { child, output } = await spawnDaemon(args, /worker \S+ started/, 15_000);
  return { child, apiUrl: '', output, kill: killer(child) };
}

/** GETs a master's JSON API directly (for assertions that need no CLI formatting). */
export async function apiGet<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return (await response.json()) as T;
}
