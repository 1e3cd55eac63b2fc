import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { clientFor, historyRecords, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { isProcessAlive } from '../support/worker-processes.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';

const TTL_SECONDS = 3;

/** Keepalive loss: the worker's path to the store is cut. */
describe.skipIf(!hasStoreUnderTest())('worker cut off from the store', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let proxy: TcpProxy;
  let worker: WorkerHandle | undefined;
  let housekeeping: HousekeepingHandle;
  const dir = tempDir('etcron-partition-');
  const holds = join(dir.path, 'holds');

  beforeAll(async () => {
    mkdirSync(holds);
    store = await startStoreUnderTest();
    client = clientFor(store);
    const [host = '127.0.0.1', port = '0'] = store.endpoint.split(':');
    proxy = await startTcpProxy(host, Number(port));
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 500 });
  });

  afterAll(async () => {
    proxy?.restore();
    await worker?.stop();
    await housekeeping?.stop();
    await proxy?.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('kills its run before the lease TTL by its own clock, never reports it, and claims later slots with a new lease', async () => {
    await putJob(client, {
      name: 'cut', schedule: '@every 2s',
      command: `if [ -e ${holds}/hold ]; then rm ${holds}/hold; echo "$$ $ETCRON_SLOT" > ${holds}/pid; sleep 30; fi`,
    });
    worker = await startWorker({ id: 'cut-off', client: { endpoints: proxy.endpoint }, leaseTtlSeconds: TTL_SECONDS, logger: quietLogger });
    writeFileSync(join(holds, 'hold'), '');
    const held = await waitFor('a held run', () => {
      if (!existsSync(join(holds, 'pid'))) return undefined;
      const [pid, slot] = readFileSync(join(holds, 'pid'), 'utf8').trim().split(' ');
      return slot === undefined ? undefined : { pid: Number(pid), slot };
    }, 10_000);
    // The command runs (it wrote the pid file) before the worker's `running` write lands: the claim
    // leaves the record `claimed` until then. Cut the network only once the run is recorded running.
    const before = await waitFor('the held run to be recorded running', async () => {
      const run = (await historyRecords(client, 'cut')).find((r) => r.slot === held.slot);
      return run?.state === 'running' ? run : undefined;
    }, 15_000, 50);

    proxy.blackhole();
    const cutAt = Date.now();
    await waitFor('the worker to kill its run', () => (isProcessAlive(held.pid) ? undefined : true), TTL_SECONDS * 1000 + 2_000, 20);
    const killedAfterMs = Date.now() - cutAt;
    // The deadline is the last confirmed keepalive's send time + TTL - 0.5 s, i.e. before the store's expiry.
    expect(killedAfterMs).toBeLessThan(TTL_SECONDS * 1000);
    // The run guard and the worker's own watchdog act on the same deadline: either may be first.
    await waitFor('the worker to count its lease loss', () => (worker?.stats().leaseLosses === 1 ? true : undefined), 2_000, 20);

    await waitFor('the run to be marked lost by the reaper', async () => {
      const run = (await historyRecords(client, 'cut')).find((r) => r.slot === held.slot);
      return run?.state === 'lost' ? true : undefined;
    }, TTL_SECONDS * 1000 + 5_000);

    proxy.restore();
    // Slots due after the cut: a slot between the held one and the cut may have been claimed and
    // finished under the old lease before the cut (waiting for `running` can take seconds here).
    const later = await waitFor('a later run under a new lease', async () => {
      const runs = (await historyRecords(client, 'cut')).filter((r) => r.state === 'succeeded' && Date.parse(r.slot) > cutAt);
      return runs.length > 0 ? runs : undefined;
    }, 20_000, 200);
    expect(later.filter((r) => r.leaseId === before.leaseId), `old lease ${before.leaseId}, cut at ${new Date(cutAt).toISOString()}`).toEqual([]);
    // The cut-off run stays lost: its late report was never accepted.
    expect((await historyRecords(client, 'cut')).find((r) => r.slot === held.slot)?.state).toBe('lost');
    console.log(JSON.stringify({ killedAfterMs }));
  }, 60_000);
  it('does not start a claim whose answer arrives after its lease was lost (answers held back past the TTL)', async () => {
    await worker?.stop();
    proxy.restore();
    const starts = join(dir.path, 'late-claims');
    await putJob(client, { name: 'late', schedule: '* * * * * *', command: `echo "$ETCRON_SLOT $ETCRON_FENCE" >> ${starts}` });
    const late = await startWorker({ id: 'late-answers', client: { endpoints: proxy.endpoint }, leaseTtlSeconds: TTL_SECONDS, logger: quietLogger });
    worker = late;
    const startLines = (): string[][] => (existsSync(starts) ? readFileSync(starts, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(' ')) : []);
    await waitFor('two runs through the proxy', () => (startLines().length >= 2 ? true : undefined), 15_000);

    // Requests still reach the store at once; every answer (claims, keep-alives) comes 2 TTLs late.
    proxy.delayResponses(2 * TTL_SECONDS * 1000);
    await waitFor('the worker to lose its lease by its own clock', () => (late.stats().leaseLosses >= 1 ? true : undefined), TTL_SECONDS * 1000 + 3_000, 50);
    const startedAtLoss = late.stats().runsStarted;
    await waitFor('a claim answered after the loss', () => (late.stats().claimsAfterLeaseLoss >= 1 ? true : undefined), 3 * TTL_SECONDS * 1000, 100);
    // No session can be confirmed while every answer is late, so no process may start at all.
    expect(late.stats().runsStarted, 'processes started after the lease was lost').toBe(startedAtLoss);
    proxy.restore();
    await client.delete().key('/cron/jobs/late');

    // Every start in the job's own output belongs to a claim the worker started: its record has
    // the same fence and a start time. A claim answered late left no start line.
    const records = new Map((await historyRecords(client, 'late')).map((r) => [r.slot, r]));
    for (const [slot = '', fence = ''] of startLines()) {
      const record = records.get(slot);
      expect(record?.fence, slot).toBe(Number(fence));
      expect(record?.startedAtMs, slot).toBeDefined();
    }
    console.log(JSON.stringify({ claimsAfterLeaseLoss: late.stats().claimsAfterLeaseLoss, starts: startLines().length }));
  }, 60_000);
});
