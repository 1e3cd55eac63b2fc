import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';

/** Catch-up after downtime (docs/scheduler.md): window and cap honoured. */
describe.skipIf(!hasStoreUnderTest())('catch-up after downtime', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle;
  let worker: WorkerHandle | undefined;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 500 });
  });

  afterAll(async () => {
    await worker?.stop();
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  it('after 20 s without workers runs the newest slots of the window up to the cap and records the rest as missed', async () => {
    const created = Date.now();
    await putJob(client, { name: 'catchup', schedule: '* * * * * *', command: 'true', catchUp: { windowMs: '10s', max: 3, lateStartMs: 0 } });
    await new Promise((resolve) => setTimeout(resolve, 20_000 - (Date.now() - created)));
    const startedAt = Date.now();
    worker = await startWorker({ id: 'late', client: { endpoints: store.endpoint }, logger: quietLogger });
    // Housekeeping may have recorded the older slots before the worker's first pass, so also wait
    // (bounded) for that pass: its catch-up claims and the slots it left over the cap.
    await waitFor('housekeeping to account for the downtime and the worker to catch up', async () => {
      const records = await historyRecords(client, 'catchup');
      const older = records.filter((r) => Date.parse(r.slot) <= startedAt - 10_000 && Date.parse(r.slot) > created + 1_000);
      const caughtUp = records.filter((r) => r.catchUp === true).length >= 3 && records.some((r) => r.reason?.startsWith('catch-up-cap'));
      return caughtUp && older.length >= 8 && older.every((r) => r.state === 'missed') ? true : undefined;
    }, 20_000, 200);
    const records = await historyRecords(client, 'catchup');
    const inWindow = records.filter((r) => {
      const lateness = startedAt - Date.parse(r.slot);
      return lateness > 5_500 && lateness < 9_500; // well inside (on-time grace, window]
    });
    const catchUp = records.filter((r) => r.catchUp === true);
    expect(catchUp.length).toBe(3);
    for (const r of catchUp) expect(startedAt - Date.parse(r.slot)).toBeLessThanOrEqual(10_000);
    // The cap keeps the newest: every catch-up slot is newer than every over-cap slot.
    const overCap = records.filter((r) => r.reason?.startsWith('catch-up-cap'));
    expect(overCap.length).toBeGreaterThanOrEqual(1);
    expect(Math.min(...catchUp.map((r) => Date.parse(r.slot)))).toBeGreaterThan(Math.max(...overCap.map((r) => Date.parse(r.slot))));
    expect(inWindow.every((r) => r.catchUp === true || r.state === 'missed')).toBe(true);
    const outside = records.filter((r) => r.reason?.startsWith('outside-catch-up-window'));
    expect(outside.length).toBeGreaterThanOrEqual(8);
    expect(outside.every((r) => startedAt - Date.parse(r.slot) > 10_000)).toBe(true);
    // Slots since the worker came up run on time.
    await waitFor('on-time runs', async () => {
      const ok = (await historyRecords(client, 'catchup')).filter((r) => r.state === 'succeeded' && Date.parse(r.slot) > startedAt);
      return ok.length >= 2 ? true : undefined;
    }, 10_000);
    console.log(JSON.stringify({ catchUp: catchUp.length, overCap: overCap.length, outside: outside.length, stats: housekeeping.stats() }));
  }, 70_000);
});
