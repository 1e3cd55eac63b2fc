import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ETCRON_BIN, REPO_ROOT } from './etcd-process.js';
import { waitFor } from './ports.js';

const ENTRY = join(REPO_ROOT, 'test', 'support', 'worker-entry.mjs');

/** Fails early, with the fix, when dist/ is missing or older than the worker sources. */
export function assertWorkerBuilt(): void {
  const built = join(REPO_ROOT, 'dist', 'worker', 'worker.js');
  if (!existsSync(built)) throw new Error('dist/worker is missing: run `npm run build` first');
  const builtMs = statSync(built).mtimeMs;
  for (const dir of ['worker', 'worker/claimer', 'worker/executor', 'shared/history', 'shared/etcd']) {
    for (const file of readdirSync(join(REPO_ROOT, dir)).filter((f) => f.endsWith('.ts'))) {
      if (statSync(join(REPO_ROOT, dir, file)).mtimeMs > builtMs + 1_000) {
        throw new Error(`dist/ is older than ${dir}/${file}: run \`npm run build\` first`);
      }
    }
  }
}

export interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  stderr(): string;
  stdout(): string;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, wait for exit (SIGKILL after the bound). */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts a worker process: by default the small entry script above; with `viaCli`, the real
 * `etcron worker` command (bin/etcron), which prints "worker <id> started" when ready.
 */
export async function spawnWorker(
  id: string, endpoint: string, options: { ttlSeconds?: number; clockOffsetMs?: number; viaCli?: boolean } = {},
): Promise<WorkerProcess> {
  const ttl = String(options.ttlSeconds ?? 3);
  const offset = options.clockOffsetMs ?? 0;
  const args = options.viaCli === true
    ? [ETCRON_BIN, 'worker', '--id', id, '--endpoints', endpoint, '--lease-ttl', ttl, `--clock-offset=${offset}`, '--log-level', 'info']
    : [ENTRY, '--id', id, '--endpoints', endpoint, '--ttl', ttl, `--clock-offset-ms=${offset}`];
  const readyLine = options.viaCli === true ? `worker ${id} started` : `ready ${id}`;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
    if (err.length > 2_000_000) err = err.slice(-1_000_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle: WorkerProcess = {
    id, child,
    stderr: () => err,
    stdout: () => out,
    signal: (signal) => { if (child.exitCode === null && child.signalCode === null) child.kill(signal); },
    stop: async (timeoutMs = 15_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  await waitFor(`worker ${id} ready`, () => {
    if (child.exitCode !== null) throw new Error(`worker ${id} exited: ${err}`);
    return out.includes(readyLine) ? true : undefined;
  }, 15_000);
  return handle;
}

/**
 * True while the process exists and is not a zombie. A killed job whose parent died too is a zombie
 * until init reaps it, which here (a non-reaping PID 1) can take seconds: it runs no more code.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
