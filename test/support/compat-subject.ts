// Which store the compatibility suite tests, and how its processes are started and stopped.
// ETCRON_COMPAT_SUBJECT=etcd runs the whole suite with real etcd on both sides, which proves the
// harness itself; the default subject is `etcron store`. A subject that cannot start fails the
// test: nothing here skips.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ETCD_BINARY, ETCRON_BIN, startEtcd, startEtcronStore, type StartOptions, type StoreProcess,
} from './etcd-process.js';
import { CompatClient } from './compat-client.js';
import { waitFor } from './ports.js';

export type SubjectKind = 'etcd' | 'etcron';

export function subjectKind(): SubjectKind {
  const value = process.env['ETCRON_COMPAT_SUBJECT'] ?? 'etcron';
  if (value !== 'etcd' && value !== 'etcron') {
    throw new Error(`ETCRON_COMPAT_SUBJECT must be "etcd" or "etcron", not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Starts the store under test and waits until it answers a Range (not just accepts TCP). */
export async function startSubject(options: StartOptions = {}): Promise<StoreProcess> {
  const kind = subjectKind();
  const store = kind === 'etcd' ? await startEtcd(options) : await startEtcronStore(options);
  await untilServing(store);
  return store;
}

/** Starts the oracle: always a real etcd 3.4. */
export async function startReference(options: StartOptions = {}): Promise<StoreProcess> {
  const store = await startEtcd(options);
  await untilServing(store);
  return store;
}

async function untilServing(store: StoreProcess): Promise<void> {
  const client = new CompatClient(store.endpoint);
  try {
    await waitFor(`${store.kind} at ${store.endpoint} to serve a Range`, async () => {
      if (store.child.exitCode !== null) {
        throw new Error(`${store.kind} exited (${store.child.exitCode}):\n${store.output()}`);
      }
      const outcome = await client.range({ key: Buffer.from('compat-probe') });
      return outcome.ok ? true : undefined;
    }, 20_000, 50);
  } catch (err) {
    await store.kill();
    store.cleanup();
    throw err;
  } finally {
    client.close();
  }
}

/** Stops (SIGKILL, we keep nothing) and removes every store given, ignoring absent ones. */
export async function disposeStores(...stores: readonly (StoreProcess | undefined)[]) {
  for (const store of stores) {
    if (store === undefined) continue;
    await store.kill();
    store.cleanup();
  }
}

export interface ExitResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  /** True when the process was still running at the deadline and had to be killed. */
  readonly isTimedOut: boolean;
}

/**
 * Runs the subject's store binary with etcd's flags on `dataPath` (the --data-dir value itself)
 * and waits for it to exit. Used for inputs on which a store must refuse to start.
 */
export async function runStoreUntilExit(
  kind: SubjectKind, dataPath: string, timeoutMs: number, uid?: number,
): Promise<ExitResult> {
  const args = [
    '--name', 'default', '--data-dir', dataPath,
    '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', 'http://127.0.0.1:0',
    '--listen-peer-urls', 'http://127.0.0.1:0',
    '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'default=http://127.0.0.1:2380',
  ];
  const [command, argv] =
    kind === 'etcd' ? [ETCD_BINARY, args] : [process.execPath, [ETCRON_BIN, 'store', ...args]];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let isTimedOut = false;
  const timer = setTimeout(() => { isTimedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  await exited;
  clearTimeout(timer);
  return { code: child.exitCode, signal: child.signalCode, output, isTimedOut };
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
