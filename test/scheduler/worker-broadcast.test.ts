import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, putJob, quietLogger, readStarts, tempDir } from '../support/scheduler-fixtures.js';
import { assertWorkerBuilt, spawnWorker, type WorkerProcess } from '../support/worker-processes.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { readRun } from '../../shared/history/read.js';

/** Long enough that the paused worker stays registered through the pause (docs/scheduler.md). */
const TTL_SECONDS = 20;
const PAUSE_MS = 10_000;

/**
 * Issue 5: a broadcast slot that a registered worker did not run is recorded `missed` for that
 * worker. One worker is SIGSTOPped past the on-time grace (5 s) but within its lease, so it stays
 * registered while its slots go by; on resume it does not run the slots that are too late.
 */
describe.skipIf(!hasStoreUnderTest())('broadcast jobs: missed slots per worker', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle;
  const dir = tempDir('etcron-broadcast-');
  const starts = join(dir.path, 'starts');
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    assertWorkerBuilt();
    store = await startStoreUnderTest();
    client = clientFor(store);
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 500 });
    for (const id of ['b1', 'b2']) workers.push(await spawnWorker(id, store.endpoint, { ttlSeconds: TTL_SECONDS }));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('records a missed run for the registered worker that could not start its slots, and none twice', async () => {
    await putJob(client, {
      // A late start limit of 0: the paused worker's late slots are missed, not started late.
      name: 'bc', schedule: '* * * * * *', broadcast: true, catchUp: { lateStartMs: 0 },
      command: `echo "$ETCRON_SLOT $ETCRON_WORKER $ETCRON_FENCE" >> ${starts}`,
    });
    const b2 = workers[1]!;
    await waitFor('both workers to run the broadcast', () => {
      const who = new Set(readStarts(starts).map((s) => s.worker));
      return who.has('b1') && who.has('b2') ? true : undefined;
    }, 15_000);
    const pausedAtMs = Date.now();
    b2.signal('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    b2.signal('SIGCONT');
    const resumedAtMs = Date.now();
    // Slots at least 1 s into the pause and more than the 5 s grace before the resume: too late for b2.
    const firstMs = Math.ceil(pausedAtMs / 1000) * 1000 + 1_000;
    const lastMs = Math.floor((resumedAtMs - 6_000) / 1000) * 1000;
    expect(lastMs).toBeGreaterThan(firstMs);
    const slots: number[] = [];
    for (let slotMs = firstMs; slotMs <= lastMs; slotMs += 1000) slots.push(slotMs);
    // Housekeeping records them once they pass the deadline (5 s) and its margin (5 s).
    const records = await waitFor('b2\'s missed records', async () => {
      const found = await Promise.all(slots.map((slotMs) => readRun(client, 'bc', slotMs, { broadcastWorker: 'b2' })));
      return found.every((r) => r !== undefined) ? found.map((r) => r!.value) : undefined;
    }, 20_000, 250);
    const lines = readStarts(starts);
    for (const [index, slotMs] of slots.entries()) {
      const slot = new Date(slotMs).toISOString();
      expect(lines.some((l) => l.slot === slot && l.worker === 'b1'), `b1 ran ${slot}`).toBe(true);
      expect(lines.some((l) => l.slot === slot && l.worker === 'b2'), `b2 did not run ${slot}`).toBe(false);
      expect(records[index]).toMatchObject({ state: 'missed', worker: 'b2' });
      expect(records[index]!.reason).toContain('b2');
    }
    // Each (slot, worker) ran at most once, and b1's own runs were never recorded missed.
    const keys = lines.map((l) => `${l.slot} ${l.worker}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const slotMs of slots) expect((await readRun(client, 'bc', slotMs, { broadcastWorker: 'b1' }))?.value.state).toBe('succeeded');
    expect(housekeeping.stats().missed).toBeGreaterThanOrEqual(slots.length);
  }, 60_000);
});
