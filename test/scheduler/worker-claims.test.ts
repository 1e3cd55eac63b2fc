import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { hasEtcd, type StoreProcess } from '../support/etcd-process.js';
import { startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, duplicates, historyRecords, putJob, quietLogger, readStarts, tempDir } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { readLocks, readLockTimeline } from '../../shared/history/read.js';

describe.skipIf(!hasEtcd())('worker claims on a real store', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const dir = tempDir('etcron-claims-');
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('three workers start each slot of an every-second job once, mostly with one claim txn per slot', async () => {
    const out = join(dir.path, 'starts');
    await putJob(client, {
      name: 'tick', schedule: '* * * * * *',
      command: `echo "$ETCRON_SLOT $ETCRON_WORKER $ETCRON_FENCE" >> ${out}`,
    });
    for (const id of ['w1', 'w2', 'w3']) {
      workers.push(await startWorker({ id, client: { endpoints: store.endpoint }, leaseTtlSeconds: 3, logger: quietLogger }));
    }
    await waitFor('10 started slots', () => (readStarts(out).length >= 10 ? true : undefined), 20_000);
    const starts = readStarts(out);
    expect(duplicates(starts.map((s) => s.slot))).toEqual([]);
    expect(duplicates(starts.map((s) => s.fence))).toEqual([]);
    expect(new Set(starts.map((s) => s.worker)).size).toBeGreaterThan(1);
    const stats = workers.map((w) => w.stats());
    const txns = stats.reduce((n, s) => n + s.claimTxns, 0);
    const won = stats.reduce((n, s) => n + s.claimsWon, 0);
    // Preferred-worker scheme: with all workers healthy, one txn per slot (+ the ones in flight).
    console.log(`claim txns ${txns}, won ${won}, takeover reads ${stats.reduce((n, s) => n + s.takeoverReads, 0)}`);
    expect(txns).toBeLessThanOrEqual(won + 3);
    const records = await historyRecords(client, 'tick');
    await waitFor('finished records', async () => {
      const done = (await historyRecords(client, 'tick')).filter((r) => r.state === 'succeeded');
      return done.length >= 5 ? true : undefined;
    });
    expect(records.every((r) => r.worker !== undefined)).toBe(true);
  });

  it('shows lock ownership and a timeline of acquisitions and releases from MVCC history', async () => {
    const timeline = await readLockTimeline(client, 'tick');
    const acquired = timeline.events.filter((e) => e.type === 'acquired');
    const released = timeline.events.filter((e) => e.type === 'released');
    expect(acquired.length).toBeGreaterThanOrEqual(10);
    expect(released.length).toBeGreaterThanOrEqual(acquired.length - 3);
    for (const r of released) {
      expect(r.cause).toBe('finished');
      const a = acquired.find((x) => x.key === r.key);
      expect(a?.fence).toBe(r.fence);
      expect(r.revision).toBeGreaterThan(r.fence);
    }
    // Ownership at a past revision: at an acquisition's revision that lock is held by its worker.
    const first = acquired[0]!;
    const past = await readLocks(client, { revision: first.revision, job: 'tick' });
    expect(past.locks.find((l) => l.key === first.key)?.worker).toBe(first.worker);
  });
});
