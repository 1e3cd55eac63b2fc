// The flags etcd's own tooling (its e2e framework among others) starts members with, on etcd 3.4
// and on the subject side by side: the readiness lines tools wait for, /metrics and /health on
// --listen-metrics-urls (and nothing else there), --max-concurrent-streams, --snapshot-count.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { disposeStores, startReference, startSubject, subjectKind } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { freePort, waitFor } from '../support/ports.js';

/** etcd's e2e framework waits for both of these lines before it uses a member. */
const READY_LINES = ['enabled capabilities for version', 'published'];

describe(`etcd 3.4's start-up flags: ${subjectKind()} store against etcd 3.4`, () => {
  const stores: (StoreProcess | undefined)[] = [];

  afterAll(async () => {
    await disposeStores(...stores);
  });

  it('starts with them, prints the readiness lines and serves /metrics and /health on the metrics URL', { timeout: 60_000 }, async () => {
    const ports = [await freePort(), await freePort()];
    const walDirs = [mkdtempSync(join(tmpdir(), 'etcron-wal-')), mkdtempSync(join(tmpdir(), 'etcron-wal-'))].map((d) => join(d, 'wal'));
    const flags = (port: number): string[] => [
      '--wal-dir', walDirs[port === ports[0] ? 0 : 1] as string,
      '--snapshot-count', '5', '--max-concurrent-streams', '100', '--experimental-initial-corrupt-check',
      '--strict-reconfig-check=false', '--listen-metrics-urls', `http://127.0.0.1:${port}`,
    ];
    const [reference, subject] = await Promise.all([
      startReference({ extraArgs: flags(ports[0] as number) }),
      startSubject({ extraArgs: flags(ports[1] as number) }),
    ]);
    stores.push(reference, subject);
    for (const [store, port] of [[reference, ports[0]], [subject, ports[1]]] as const) {
      await waitFor(`${store.kind} to print its readiness lines`, () =>
        (READY_LINES.every((line) => store.output().includes(line)) ? true : undefined), 20_000, 100);
      // --wal-dir is created (etcd writes its log there; etcron keeps it in the member database).
      expect(existsSync(walDirs[port === ports[0] ? 0 : 1] as string), store.kind).toBe(true);
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status, store.kind).toBe(200);
      expect(await metrics.text(), store.kind).toContain('etcd_server_has_leader 1');
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status, store.kind).toBe(200);
      expect(JSON.parse(await health.text()), store.kind).toEqual({ health: 'true' });
      const gateway = await fetch(`http://127.0.0.1:${port}/v3/kv/range`, { method: 'POST', body: '{"key":"YQ=="}' });
      expect(gateway.status, `${store.kind}: the metrics URL serves no API`).toBe(404);
    }
    // etcd's MVCC counters, as etcd's own metrics e2e test reads them: puts and deleted keys seen,
    // and the number of live keys.
    const mvcc = async (store: StoreProcess, port: number): Promise<string[]> => {
      const put = (key: string): Promise<Response> => fetch(`${store.clientUrl}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: 'dg==' }) });
      await put('k');
      await put('1');
      await put('2');
      await fetch(`${store.clientUrl}/v3/kv/deleterange`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('1').toString('base64'), range_end: Buffer.from('3').toString('base64') }) });
      // etcd updates some of these on its backend's 100 ms commit: wait, bounded, for the put count.
      return waitFor(`${store.kind}'s mvcc counters`, async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const lines = text.split('\n').filter((l) => /^etcd_(mvcc_put_total|mvcc_delete_total|debugging_mvcc_keys_total) /.test(l));
        return lines.includes('etcd_mvcc_put_total 3') ? lines.sort() : undefined;
      }, 10_000, 100);
    };
    expect(await mvcc(subject, ports[1] as number)).toEqual(await mvcc(reference, ports[0] as number));
  });
});
