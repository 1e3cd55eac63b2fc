// Issue #12 item 7: a worker whose job watch sits on a member that is then cut off from its peers.
// Without WithRequireLeader that watch stays open and silent: jobs added during the partition
// are never seen and never run. With it, the member ends the watch ("etcdserver: no leader"), the
// worker re-opens it on a member that has a leader, and runs the new job. The worker's store
// calls are pinned to the member that will be cut off (etcd3's deterministic host order), so the
// test cannot pass by a lucky pick. Runs on etcd and on etcron (ETCRON_CLUSTER_SUBJECT).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';
import { putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { createEtcdClient } from '../../shared/etcd/client.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';

/**
 * Longer than the three election timeouts a member waits before it ends streams that require a
 * leader: the worker must find the new job through its re-opened watch, not by losing its lease
 * and re-reading everything in a new session.
 */
const LEASE_TTL_SECONDS = 10;

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0) : [];
}

describe(`3 ${clusterSubject()} members: a worker whose watch member is cut off`, () => {
  let cluster: Cluster;
  let worker: WorkerHandle | undefined;
  const dir = tempDir('etcron-require-leader-');

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, withPeerProxies: true });
  });

  afterAll(async () => {
    ConnectionPool.deterministicOrder = false;
    await worker?.stop();
    await cluster?.teardown();
    dir.remove();
  });

  it('sees and runs a job added during the partition, through another member', async () => {
    onTestFailed(() => { console.error(cluster.logTails(30)); });
    const leader = await cluster.leader();
    const [cutOff, other] = cluster.runningIndexes().filter((i) => i !== leader.index);
    if (cutOff === undefined || other === undefined) throw new Error('need two followers');
    const admin = createEtcdClient({ endpoints: cluster.member(leader.index).endpoint });
    try {
      // etcd3 tries hosts from the last to the first with a deterministic order: cutOff first.
      ConnectionPool.deterministicOrder = true;
      worker = await startWorker({
        id: 'pinned', client: { endpoints: [cluster.member(other).endpoint, cluster.member(cutOff).endpoint] },
        leaseTtlSeconds: LEASE_TTL_SECONDS, logger: quietLogger,
      });
      const before = join(dir.path, 'before');
      await putJob(admin, { name: 'before', schedule: '* * * * * *', command: `echo "$ETCRON_SLOT" >> ${before}` });
      await waitFor('a run of the job added before the partition', () => (lines(before).length > 0 ? true : undefined), 15_000, 100);

      cluster.isolate(cutOff);
      const cutAt = Date.now();
      const during = join(dir.path, 'during');
      await putJob(admin, { name: 'during', schedule: '* * * * * *', command: `echo "$ETCRON_SLOT" >> ${during}` });
      // Bound: three election timeouts until the member ends the watch, a re-open, a slot.
      await waitFor('a run of the job added during the partition', () => (lines(during).length > 0 ? true : undefined),
        LEASE_TTL_SECONDS * 1000 + 10_000, 100);
      console.log(`require-leader worker: job added during the partition ran ${Date.now() - cutAt} ms after the cut`);
      expect(worker.stats().leaseLosses, 'the worker kept its lease through the partition').toBe(0);
    } finally {
      cluster.heal();
      admin.close();
    }
  }, 120_000);
});
