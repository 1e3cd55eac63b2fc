import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSelfSignedCert } from './self-signed-cert.js';
import type { TlsSide } from './tls-config.js';

export interface AutoTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly isNew: boolean;
}

/**
 * --auto-tls / --peer-auto-tls: the member's self-signed certificate, in the place etcd keeps it
 * (<data-dir>/fixtures/client or /fixtures/peer, cert.pem and key.pem). As etcd does, a pair left by
 * an earlier start is used again, so clients that pinned it keep working across restarts.
 */
export function ensureAutoTlsFiles(dataDir: string, side: TlsSide, hosts: readonly string[], now: Date): AutoTlsFiles {
  const directory = join(dataDir, 'fixtures', side);
  const certFile = join(directory, 'cert.pem');
  const keyFile = join(directory, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile, isNew: false };
  const generated = createSelfSignedCert(hosts, now);
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  // The key first: a crash in between leaves no certificate without its key.
  writeFileSync(keyFile, generated.keyPem, { mode: 0o600 });
  writeFileSync(certFile, generated.certPem, { mode: 0o644 });
  return { certFile, keyFile, isNew: true };
}
