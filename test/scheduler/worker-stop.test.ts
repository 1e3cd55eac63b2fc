import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { startWorker } from '../../worker/index.js';

const JOBS = 30;

/**
 * Issue 15: a clean stop (SIGTERM, Ctrl-C) in the middle of claims never leaves a run that ran
 * recorded `lost` or stuck `running`: claims answered during the stop are closed unstarted, runs
 * that started are stopped and recorded before the store client closes. Checked from the jobs'
 * own record of what ran.
 */
describe.skipIf(!hasStoreUnderTest())('worker clean stop', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle;
  const dir = tempDir('etcron-stop-');
  const ran = join(dir.path, 'ran');

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 200 });
  });

  afterAll(async () => {
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('records every run that ran, none lost, when stopped while claims are in flight', { timeout: 60_000 }, async () => {
    for (let i = 0; i < JOBS; i++) {
      await putJob(client, { name: `stop-${i}`, schedule: '* * * * * *', command: `echo "$ETCRON_JOB $ETCRON_SLOT" >> ${ran}` });
    }
    const worker = await startWorker({ id: 'stopper', client: { endpoints: store.endpoint }, logger: quietLogger, leaseTtlSeconds: 3 });
    await waitFor('runs on every job', () => (existsSync(ran) && readFileSync(ran, 'utf8').split('\n').length > JOBS * 2 ? true : undefined), 20_000, 50);
    // Just after a second begins: that second's runs are starting, the claims of the next second's
    // slots (claimed ahead) are in flight, and some are held for their slot.
    // A timer to the instant, not a poll of a narrow window: the worker runs in this process, and
    // its starts at each second's boundary can hold the event loop past such a window.
    await new Promise((resolve) => setTimeout(resolve, 1_000 - (Date.now() % 1_000) + 50));
    await worker.stop();
    for (let i = 0; i < JOBS; i++) await client.delete().key(`/cron/jobs/stop-${i}`);
    const lines = readFileSync(ran, 'utf8').trim().split('\n');
    const records = new Map<string, string>();
    await waitFor('a final record for every run that ran', async () => {
      for (let i = 0; i < JOBS; i++) {
        for (const record of await historyRecords(client, `stop-${i}`)) records.set(`${record.job} ${record.slot}`, record.state);
      }
      return lines.every((line) => ['succeeded', 'failed', 'killed'].includes(records.get(line) ?? '')) ? true : undefined;
    }, 20_000, 200);
    expect([...records.values()].filter((state) => state === 'lost')).toEqual([]);
  });
});
