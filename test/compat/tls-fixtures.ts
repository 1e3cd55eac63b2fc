// Certificates for the TLS tests, made with the openssl CLI as an operator would, and a small
// spawner for stores started with arbitrary etcd flags (https:// URLs, TLS files).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ETCD_BINARY, ETCDCTL_BINARY, ETCRON_BIN } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

export const OPENSSL_BINARY = process.env['ETCRON_OPENSSL_BIN'] ?? 'openssl';

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestCertificates {
  readonly ca: string;
  /** A second CA the stores do not trust. */
  readonly otherCa: string;
  /** Server and peer certificate: SAN IP:127.0.0.1, serverAuth and clientAuth, from `ca`. */
  readonly server: CertPair;
  /** The same as `server` with another common name ("server2"). */
  readonly server2: CertPair;
  readonly client: CertPair;
  /** A client certificate from `ca` whose common name is "root" (the etcd user it acts as). */
  readonly root: CertPair;
  /** A client certificate from `otherCa`. */
  readonly untrusted: CertPair;
  /** A client certificate from `ca` that expired in 2020. */
  readonly expired: CertPair;
}

function openssl(args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(OPENSSL_BINARY, args, { cwd, timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else reject(new Error(`openssl ${args.join(' ')} failed: ${stderr}`));
    });
  });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA, and certificates signed by it; `openssl ca` writes the expired one with fixed past dates. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  mkdirSync(join(dir, 'db'), { recursive: true });
  const path = (name: string): string => join(dir, name);
  writeFileSync(path('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(path('client.ext'), 'extendedKeyUsage=clientAuth\n');
  writeFileSync(path('db/index.txt'), '');
  writeFileSync(path('db/serial'), '01\n');
  writeFileSync(path('ca.cnf'), [
    '[ca]', 'default_ca = test_ca',
    '[test_ca]', 'database = db/index.txt', 'new_certs_dir = db', 'serial = db/serial',
    'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none',
    '[any]', 'commonName = supplied',
    '[client_ext]', 'extendedKeyUsage = clientAuth', '',
  ].join('\n'));
  const selfSigned = (name: string): Promise<void> =>
    openssl(['req', '-x509', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
  const request = (name: string): Promise<void> =>
    openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  // A serial of its own per certificate: -CAcreateserial shares one serial file, which
  // certificates signed in parallel race on ("Unable to load number from ca.srl").
  let serial = 0x1000;
  const signed = async (name: string, ca: string, ext: string): Promise<void> => {
    const mine = `0x${(serial++).toString(16)}`;
    await request(name);
    await openssl([
      'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', mine,
      '-out', `${name}.crt`, '-days', '2', '-extfile', ext,
    ], dir);
  };
  await Promise.all([selfSigned('ca'), selfSigned('other-ca')]);
  await Promise.all([
    signed('server', 'ca', 'server.ext'),
    signed('server2', 'ca', 'server.ext'),
    signed('client', 'ca', 'client.ext'),
    signed('root', 'ca', 'client.ext'),
    signed('untrusted', 'other-ca', 'client.ext'),
    request('expired'),
  ]);
  await openssl([
    'ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'expired.csr',
    '-out', 'expired.crt', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z',
    '-extensions', 'client_ext', '-notext',
  ], dir);
  const pair = (name: string): CertPair => ({ cert: path(`${name}.crt`), key: path(`${name}.key`) });
  return {
    ca: path('ca.crt'), otherCa: path('other-ca.crt'),
    server: pair('server'), server2: pair('server2'), client: pair('client'), root: pair('root'), untrusted: pair('untrusted'), expired: pair('expired'),
  };
}

/** A store process started with exactly the given etcd flags. */
export interface FlaggedStore {
  readonly kind: 'etcd' | 'etcron';
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  kill(): Promise<void>;
}

export function spawnStore(kind: 'etcd' | 'etcron', args: readonly string[]): FlaggedStore {
  const [command, argv] = kind === 'etcd' ? [ETCD_BINARY, args] : [process.execPath, [ETCRON_BIN, 'store', ...args]];
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    kind, child, exited,
    output: () => output,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface CtlOutcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** etcdctl with short timeouts, so that a refused connection fails in about a second. */
export function etcdctlTls(endpoint: string, tlsArgs: readonly string[], args: readonly string[]): Promise<CtlOutcome> {
  const argv = ['--endpoints', endpoint, '--dial-timeout', '1s', '--command-timeout', '2s', ...tlsArgs, ...args];
  return new Promise((resolve) => {
    execFile(ETCDCTL_BINARY, argv, { timeout: 15_000, env: { ...process.env, ETCDCTL_API: '3' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** etcdctl's "Error:" line, without its zap log lines (timestamps, UUIDs). */
export function errorLine(outcome: CtlOutcome): string {
  return outcome.stderr.split('\n').filter((line) => line.startsWith('Error:')).join('\n');
}

/** Waits until a put with working credentials succeeds: the member serves clients over TLS. */
export async function waitServing(store: FlaggedStore, endpoint: string, tlsArgs: readonly string[]): Promise<void> {
  await waitFor(`${store.kind} to serve ${endpoint}`, async () => {
    if (store.child.exitCode !== null) throw new Error(`${store.kind} exited early:\n${store.output()}`);
    const outcome = await etcdctlTls(endpoint, tlsArgs, ['put', 'tls-ready', 'yes']);
    return outcome.code === 0 ? true : undefined;
  }, 20_000, 100);
}
