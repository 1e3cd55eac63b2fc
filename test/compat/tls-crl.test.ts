// --client-crl-file, with etcd 3.4's own test fixtures (golang-etcd-server-dev): a client
// certificate the list revokes is refused, any other from the CA is served, on etcd and on etcron.
// The fixture list's nextUpdate passed in 2021: etcd ignores the list's dates, and so must we.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { etcdctlTls, spawnStore, waitServing, type FlaggedStore } from './tls-fixtures.js';

const FIXTURES = '/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures';
const isCi = process.env['CI'] === 'true';

describe.skipIf(!existsSync(FIXTURES) && !isCi)('client certificate revocation list (etcd 3.4 fixtures)', () => {
  const stores: FlaggedStore[] = [];
  const dirs: string[] = [];

  afterAll(async () => {
    for (const store of stores) await store.kill();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the revoked certificate and serves the others, as etcd does', { timeout: 60_000 }, async () => {
    if (!existsSync(FIXTURES)) throw new Error(`CI=true but ${FIXTURES} is missing: .ci/run installs golang-etcd-server-dev`);
    const valid = ['--cacert', join(FIXTURES, 'ca.crt'), '--cert', join(FIXTURES, 'server.crt'), '--key', join(FIXTURES, 'server.key.insecure')];
    const revoked = ['--cacert', join(FIXTURES, 'ca.crt'), '--cert', join(FIXTURES, 'server-revoked.crt'), '--key', join(FIXTURES, 'server-revoked.key.insecure')];
    for (const kind of ['etcd', 'etcron'] as const) {
      const dir = mkdtempSync(join(tmpdir(), `crl-${kind}-`));
      dirs.push(dir);
      const client = `https://127.0.0.1:${await freePort()}`;
      const store = spawnStore(kind, [
        '--name', 'crl', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', `http://127.0.0.1:${await freePort()}`,
        '--cert-file', join(FIXTURES, 'server.crt'), '--key-file', join(FIXTURES, 'server.key.insecure'),
        '--trusted-ca-file', join(FIXTURES, 'ca.crt'), '--client-cert-auth',
        '--client-crl-file', join(FIXTURES, 'revoke.crl'),
      ]);
      stores.push(store);
      await waitServing(store, client, valid);
      const refused = await etcdctlTls(client, revoked, ['put', 'k', 'v']);
      expect(refused.code, `${kind}: ${refused.stderr}`).not.toBe(0);
      const served = await etcdctlTls(client, valid, ['get', 'tls-ready', '--print-value-only']);
      expect(served.stdout.trim(), kind).toBe('yes');
    }
  });
});
