import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:net';
import { freePort, waitFor } from './ports.js';

export const ETCD_BINARY = process.env['ETCRON_ETCD_BIN'] ?? '/usr/bin/etcd';
export const ETCDCTL_BINARY = process.env['ETCRON_ETCDCTL_BIN'] ?? '/usr/bin/etcdctl';
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const ETCRON_BIN = join(REPO_ROOT, 'bin', 'etcron');

/** A store process under test: real etcd or `etcron store`, both spoken to the same way. */
export interface StoreProcess {
  readonly kind: 'etcd' | 'etcron';
  readonly endpoint: string; // host:port
  readonly clientUrl: string; // http://host:port
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Removes the data dir (after stop/kill). */
  cleanup(): void;
}

export interface StartOptions {
  readonly dataDir?: string;
  readonly clientPort?: number;
  readonly peerPort?: number;
  readonly name?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
}

/** Fails loudly under CI when real etcd is missing; elsewhere tests may skip on `hasEtcd()`. */
export function hasEtcd(): boolean {
  const present = existsSync(ETCD_BINARY) && existsSync(ETCDCTL_BINARY);
  if (!present && process.env['CI'] === 'true') {
    throw new Error(`real etcd is required under CI: ${ETCD_BINARY} / ${ETCDCTL_BINARY} missing`);
  }
  return present;
}

export function startEtcd(options: StartOptions = {}): Promise<StoreProcess> {
  return startStore('etcd', options);
}

export function startEtcronStore(options: StartOptions = {}): Promise<StoreProcess> {
  return startStore('etcron', options);
}

/** Ports picked by freePort() can be taken by a parallel test before the server binds them. */
const PORT_RACE_RETRIES = 3;

async function startStore(kind: 'etcd' | 'etcron', options: StartOptions): Promise<StoreProcess> {
  const choosesPorts = options.clientPort === undefined && options.peerPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStoreOnce(kind, options);
    } catch (err) {
      const raced = err instanceof Error && /address already in use/.test(err.message);
      if (!choosesPorts || !raced || attempt >= PORT_RACE_RETRIES) throw err;
    }
  }
}

async function startStoreOnce(kind: 'etcd' | 'etcron', options: StartOptions): Promise<StoreProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `${kind}-test-`));
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const name = options.name ?? 'default';
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name,
    '--data-dir', join(dataDir, 'data'),
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    ...(options.extraArgs ?? []),
  ];
  const [command, argv] =
    kind === 'etcd' ? [ETCD_BINARY, args] : [process.execPath, [ETCRON_BIN, 'store', ...args]];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env['ETCD_UNSUPPORTED_ARCH'] ?? '', ...options.env },
  });
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  const store: StoreProcess = {
    kind, endpoint: `127.0.0.1:${clientPort}`, clientUrl, peerUrl, dataDir, child,
    output: () => output,
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  };
  try {
    await waitFor(`${kind} to accept connections on ${clientPort}`, async () => {
      if (child.exitCode !== null) throw new Error(`${kind} exited early (${child.exitCode}):\n${output}`);
      return (await canConnect(clientPort)) ? true : undefined;
    }, options.startTimeoutMs ?? 15_000);
  } catch (err) {
    await store.kill();
    throw err;
  }
  return store;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
