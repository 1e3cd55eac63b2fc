import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { clientFor, historyRecords, putJob, quietLogger } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { jobKey } from '../../shared/keys.js';

/**
 * The worker's job watch (issue 5): after a disconnect during which jobs were added, deleted and
 * edited and the store was compacted past the worker's last revision, the worker re-reads and
 * resumes: it runs the added job, stops the deleted one, and follows the edit.
 */
describe.skipIf(!hasStoreUnderTest())('worker job watch across a disconnect and compaction', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let proxy: TcpProxy;
  let worker: WorkerHandle | undefined;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    const [host = '127.0.0.1', port = '0'] = store.endpoint.split(':');
    proxy = await startTcpProxy(host, Number(port));
  });

  afterAll(async () => {
    proxy?.restore();
    await worker?.stop();
    await proxy?.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  it('applies every change made while it was cut off, even past a compaction', async () => {
    await putJob(client, { name: 'stays', schedule: '* * * * * *', command: 'true' });
    await putJob(client, { name: 'goes', schedule: '* * * * * *', command: 'true' });
    await putJob(client, { name: 'edited', schedule: '* * * * * *', command: 'true' });
    worker = await startWorker({ id: 'watcher', client: { endpoints: proxy.endpoint }, leaseTtlSeconds: 10, logger: quietLogger });
    await waitFor('all three jobs running', async () => {
      const counts = await Promise.all(['stays', 'goes', 'edited'].map(async (j) => (await historyRecords(client, j)).length));
      return counts.every((c) => c > 0) ? true : undefined;
    }, 15_000, 200);

    proxy.blackhole();
    await putJob(client, { name: 'added', schedule: '* * * * * *', command: 'true' });
    await client.delete().key(jobKey('goes'));
    await putJob(client, { name: 'edited', schedule: '* * * * * *', command: 'true', paused: true });
    const revision = Number((await client.kv.range({ key: Buffer.from('/') })).header.revision);
    await client.kv.compact({ revision, physical: true });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    proxy.restore();

    await waitFor('the added job to run', async () => ((await historyRecords(client, 'added')).some((r) => r.worker === 'watcher') ? true : undefined), 15_000, 200);
    // The added job running proves the re-read happened; claims built before it may still land.
    const settledAt = Date.now() + 500;
    await waitFor('slots to pass', () => (Date.now() - settledAt > 3_500 ? true : undefined), 10_000, 200);
    const newer = async (job: string): Promise<number> =>
      (await historyRecords(client, job)).filter((r) => r.claimedAtMs !== undefined && r.claimedAtMs > settledAt).length;
    expect(await newer('goes')).toBe(0);
    expect(await newer('edited')).toBe(0);
    expect(await newer('stays')).toBeGreaterThanOrEqual(2);
    expect(worker.stats().leaseLosses).toBe(0);
  }, 60_000);
});
