// --peer-cert-allowed-cn, against real etcd 3.4 (as etcd's own TestEtcdPeerCNAuth): three members
// with peer TLS and client-cert auth; two carry the allowed common name, the third a certificate
// from the same CA with another name. The two form a cluster and serve; the third is refused
// ("bad certificate"), never joins and serves nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../support/ports.js';
import { etcdctlTls, makeCertificates, spawnStore, type FlaggedStore } from './tls-fixtures.js';

describe('peer certificate common name (--peer-cert-allowed-cn)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-peer-cn-'));
  const stores: FlaggedStore[] = [];
  afterAll(async () => {
    for (const store of stores) await store.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the members with the allowed name form the cluster and keeps the other out, as etcd does', { timeout: 120_000 }, async () => {
    const certs = await makeCertificates(dir);
    for (const kind of ['etcd', 'etcron'] as const) {
      const peerPorts = [await freePort(), await freePort(), await freePort()];
      const clientPorts = [await freePort(), await freePort(), await freePort()];
      const cluster = peerPorts.map((port, i) => `e${i}=https://127.0.0.1:${port}`).join(',');
      const members = peerPorts.map((peerPort, i) => {
        const pair = i <= 1 ? certs.server : certs.server2;
        const client = `http://127.0.0.1:${clientPorts[i]}`;
        const store = spawnStore(kind, [
          '--name', `e${i}`, '--data-dir', join(dir, `${kind}-${i}`),
          '--listen-client-urls', client, '--advertise-client-urls', client,
          '--listen-peer-urls', `https://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `https://127.0.0.1:${peerPort}`,
          '--initial-cluster', cluster,
          '--peer-cert-file', pair.cert, '--peer-key-file', pair.key, '--peer-trusted-ca-file', certs.ca,
          '--peer-client-cert-auth', '--peer-cert-allowed-cn', i <= 1 ? 'server' : 'server2',
        ]);
        stores.push(store);
        return { store, endpoint: client };
      });
      const [first, , third] = members;
      await waitFor(`${kind}: the two allowed members to serve`, async () => {
        const put = await etcdctlTls(first!.endpoint, [], ['put', 'cn', 'ok']);
        return put.code === 0 ? true : undefined;
      }, 30_000, 200);
      await waitFor(`${kind}: the third member to report the refused certificate`, () => (/bad certificate/.test(third!.store.output()) ? true : undefined), 20_000, 200);
      const refused = await etcdctlTls(third!.endpoint, [], ['put', 'cn', 'third']);
      expect(refused.code, `${kind}: ${refused.stdout}`).not.toBe(0);
      for (const m of members) await m.store.kill();
    }
  });

  it('refuses both flags at once, with etcd\'s message', { timeout: 30_000 }, async () => {
    const certs = await makeCertificates(join(dir, 'x'));
    const store = spawnStore('etcron', [
      '--name', 'x', '--data-dir', join(dir, 'x-data'), '--listen-peer-urls', `https://127.0.0.1:${await freePort()}`,
      '--initial-advertise-peer-urls', 'https://127.0.0.1:1', '--initial-cluster', 'x=https://127.0.0.1:1',
      '--peer-cert-file', certs.server.cert, '--peer-key-file', certs.server.key,
      '--peer-cert-allowed-cn', 'a', '--peer-cert-allowed-hostname', 'b',
    ]);
    stores.push(store);
    expect(await store.exited).not.toBe(0);
    expect(store.output()).toContain('AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")');
  });
});
