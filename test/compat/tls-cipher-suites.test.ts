// --cipher-suites, against real etcd 3.4: over TLS 1.2 a member negotiates only the listed suites
// (Go's names) and refuses a client offering none of them; TLS 1.3 keeps its own suites, as in
// Go; an unknown name stops the member at start.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { makeCertificates, OPENSSL_BINARY, spawnStore, waitServing, type FlaggedStore } from './tls-fixtures.js';

/** What an OpenSSL client negotiates: the suite, or the failure. */
function probe(port: number, args: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(OPENSSL_BINARY, ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 15_000 }, (_err, stdout, stderr) => {
      const text = `${stdout}\n${stderr}`;
      const suite = /Cipher is (\S+)/.exec(text)?.[1];
      resolve(suite !== undefined && suite !== '(NONE)' ? suite : /alert handshake failure|no cipher match|handshake failure/.test(text) ? 'handshake failure' : `unexpected: ${text.slice(-300)}`);
    }).stdin?.end();
  });
}

describe('TLS cipher suites (--cipher-suites)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-ciphers-'));
  const stores: FlaggedStore[] = [];
  afterAll(async () => {
    for (const store of stores) await store.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates only the listed TLS 1.2 suites and keeps TLS 1.3, as etcd does', { timeout: 90_000 }, async () => {
    const certs = await makeCertificates(dir);
    const tlsArgs = ['--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key];
    const seen: Record<string, string[]> = {};
    for (const kind of ['etcd', 'etcron'] as const) {
      const port = await freePort();
      const client = `https://127.0.0.1:${port}`;
      const store = spawnStore(kind, [
        '--name', 'ciphers', '--data-dir', join(dir, `${kind}-data`),
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', `http://127.0.0.1:${await freePort()}`,
        '--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca,
        '--cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305',
      ]);
      stores.push(store);
      await waitServing(store, client, tlsArgs);
      seen[kind] = await Promise.all([
        probe(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']),
        probe(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305']),
        probe(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384']),
        probe(port, ['-tls1_3']),
      ]);
    }
    // TLS 1.3 is negotiated on both; which of its suites each prefers is the library's choice.
    expect(seen['etcron']?.slice(0, 3)).toEqual(seen['etcd']?.slice(0, 3));
    expect(seen['etcd']?.[3]).toMatch(/^TLS_/);
    expect(seen['etcron']?.slice(0, 3)).toEqual(['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'handshake failure']);
    expect(seen['etcron']?.[3]).toMatch(/^TLS_/);
  });

  it.each([
    ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOT_A_SUITE', 'unexpected TLS cipher suite "TLS_NOT_A_SUITE"'],
    // etcd 3.4 cannot serve without one (its HTTP/2 server refuses the list, and it stops).
    ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'HTTP/2-required AES_128_GCM_SHA256'],
  ])('refuses the list %s at start', { timeout: 30_000 }, async (list, message) => {
    const store = spawnStore('etcron', ['--name', 'bad', '--data-dir', join(dir, 'bad-data'), '--cipher-suites', list]);
    stores.push(store);
    expect(await store.exited).not.toBe(0);
    expect(store.output()).toContain(message);
  });
});
