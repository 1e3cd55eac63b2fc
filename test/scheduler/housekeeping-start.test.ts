import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { clientFor, historyRecords, putJob, quietLogger } from '../support/scheduler-fixtures.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { createEtcdClient } from '../../shared/etcd/client.js';
import { runKey } from '../../shared/keys.js';
import { readRun } from '../../shared/history/read.js';

/**
 * Issue 12 item 1: a housekeeper whose start fails (the store unreachable when its master is
 * elected) retries until it runs, and says so in its health; it then does its work: a run left
 * `running` by a worker whose lease is gone is reaped as `lost`. Before, a failed start was
 * logged once and housekeeping never ran for the rest of the term.
 */
describe.skipIf(!hasStoreUnderTest())('housekeeping start failures', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let proxy: TcpProxy | undefined;
  let viaProxy: Etcd3 | undefined;
  let housekeeping: HousekeepingHandle | undefined;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
  });

  afterAll(async () => {
    await housekeeping?.stop();
    viaProxy?.close();
    await proxy?.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  it('retries a failed start with backoff, reports it, then reaps', { timeout: 60_000 }, async () => {
    const spec = await putJob(client, { name: 'hk-start', schedule: '@hourly', command: 'true' });
    const slotMs = Date.UTC(2026, 0, 1, 0, 0, 0);
    const key = runKey(spec.name, slotMs);
    // A run whose worker died: its lease (never granted) is gone and its lock key absent.
    await client.put(key).value(JSON.stringify({
      job: spec.name, slot: new Date(slotMs).toISOString(), runId: `${spec.name}@${new Date(slotMs).toISOString()}#1`,
      state: 'running', worker: 'w-gone', leaseId: '4242', attempt: 1, claimedAtMs: slotMs, startedAtMs: slotMs,
    }));
    const [host, port] = store.endpoint.split(':') as [string, string];
    const first = await startTcpProxy(host, Number(port));
    const proxyPort = Number(first.endpoint.split(':')[1]);
    await first.close(); // the store is unreachable when housekeeping starts
    viaProxy = createEtcdClient({ endpoints: first.endpoint, dialTimeoutMs: 500 });
    housekeeping = startHousekeeping(viaProxy, { logger: quietLogger, intervalMs: 200 });
    await waitFor('a failed start reported', () => {
      const health = housekeeping?.health();
      return health?.state === 'retrying' && health.lastError !== null ? health : undefined;
    }, 20_000, 50);
    proxy = await startTcpProxy(host, Number(port), proxyPort);
    await waitFor('housekeeping running', () => (housekeeping?.health().state === 'running' ? true : undefined), 30_000, 50);
    const health = housekeeping.health();
    expect(health.startAttempts).toBeGreaterThanOrEqual(2);
    const reaped = await waitFor('the dead worker\'s run reaped', async () => {
      const run = await readRun(client, spec.name, slotMs);
      return run?.value.state === 'lost' ? run.value : undefined;
    }, 20_000, 100);
    expect(reaped.state).toBe('lost');
    await waitFor('a pass after the start', () => (housekeeping?.health().lastPassAtMs !== null ? true : undefined), 10_000, 50);
  });

  it('looks back nowhere for a job created while it runs, whatever records its name has', async () => {
    const running = housekeeping as HousekeepingHandle;
    // Left by an earlier job of the same name, three days ago.
    const staleMs = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 72 * 3_600_000;
    await client.put(runKey('hk-new', staleMs)).value(JSON.stringify({
      job: 'hk-new', slot: new Date(staleMs).toISOString(), runId: `hk-new@${new Date(staleMs).toISOString()}#1`,
      state: 'succeeded', attempt: 1, worker: 'w-old', endedAtMs: staleMs + 1_000,
    }));
    await putJob(client, { name: 'hk-new', schedule: '@hourly', command: 'true' });
    const passes = running.stats().passes;
    await waitFor('three passes after the job appeared', () => (running.stats().passes >= passes + 3 ? true : undefined), 10_000, 50);
    const records = await historyRecords(client, 'hk-new');
    expect(records.map((record) => record.state)).toEqual(['succeeded']);
  });
});
