import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { IOptions } from 'etcd3';

/**
 * Client TLS for the store, as etcdctl takes it: --cacert (the CA that signed the store's
 * certificate), --cert and --key (a client certificate, for stores run with --client-cert-auth).
 * Paths; each falls back to env ETCRON_CACERT / ETCRON_CERT / ETCRON_KEY.
 */
export interface ClientTlsFiles {
  readonly caCertFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

export type ClientTlsCredentials = NonNullable<IOptions['credentials']>;

type Env = Readonly<Record<string, string | undefined>>;

/** A client TLS setting that cannot work; the message names the flag and the file. */
export class ClientTlsError extends Error {
  override readonly name = 'ClientTlsError';
}

/** Flags win over the environment; empty strings count as not given. */
export function resolveClientTlsFiles(files: ClientTlsFiles = {}, env: Env = process.env): ClientTlsFiles {
  const pick = (flagValue: string | undefined, envName: string): string | undefined => {
    const value = flagValue ?? env[envName];
    return value === undefined || value === '' ? undefined : value;
  };
  const caCertFile = pick(files.caCertFile, 'ETCRON_CACERT');
  const certFile = pick(files.certFile, 'ETCRON_CERT');
  const keyFile = pick(files.keyFile, 'ETCRON_KEY');
  return {
    ...(caCertFile === undefined ? {} : { caCertFile }),
    ...(certFile === undefined ? {} : { certFile }),
    ...(keyFile === undefined ? {} : { keyFile }),
  };
}

/**
 * The etcd3 client's credentials for the given files, or undefined when none is given (then
 * https:// endpoints are checked against the system's CAs, http:// ones stay plain). Without
 * --cacert the system's CAs verify the store; a client certificate needs both --cert and --key.
 */
export function loadClientTls(files: ClientTlsFiles): ClientTlsCredentials | undefined {
  const { caCertFile, certFile, keyFile } = files;
  if (caCertFile === undefined && certFile === undefined && keyFile === undefined) return undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ClientTlsError('--cert and --key must be given together (env ETCRON_CERT, ETCRON_KEY)');
  }
  const rootCertificate = caCertFile === undefined ? systemRoots() : read('--cacert', caCertFile);
  return {
    rootCertificate,
    ...(certFile === undefined ? {} : { certChain: read('--cert', certFile) }),
    ...(keyFile === undefined ? {} : { privateKey: read('--key', keyFile) }),
  };
}

/**
 * etcd3 takes credentials only with a root certificate buffer, and any buffer replaces the
 * default roots; so without --cacert we hand over Node's own root store, as etcdctl then uses
 * the system's.
 */
function systemRoots(): Buffer {
  return Buffer.from(rootCertificates.join('\n'));
}

function read(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ClientTlsError(`${flag}: cannot read ${path} (${code})`);
  }
}
