import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, putJob, quietLogger } from '../support/scheduler-fixtures.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { offsetClock, systemClock } from '../../shared/clock.js';
import { runKey, runsPrefix } from '../../shared/keys.js';
import type { RunRecord } from '../../shared/history/records.js';

const HOUR_MS = 3_600_000;

/**
 * Issue 12: run records of a job that no longer exists (runs that were live at `job rm`, or a
 * job deleted by other means) are deleted by the leader's housekeeping once they are old; the
 * history of jobs that exist is left to their own trim. The housekeeper's clock runs an hour
 * ahead, so records written a minute ago count as old.
 */
describe.skipIf(!hasStoreUnderTest())('housekeeping of orphaned history', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle | undefined;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
  });

  afterAll(async () => {
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  async function putRecord(job: string, slotMs: number, state: RunRecord['state']): Promise<void> {
    const slot = new Date(slotMs).toISOString();
    const record: RunRecord = {
      job, slot, runId: `${job}@${slot}#1`, state, worker: 'w-old', attempt: 1,
      claimedAtMs: slotMs, startedAtMs: slotMs, ...(state === 'running' ? {} : { endedAtMs: slotMs + 1_000, exitCode: 0 }),
    };
    await client.put(runKey(job, slotMs)).value(JSON.stringify(record));
  }

  async function keysOf(job: string): Promise<string[]> {
    return (await client.getAll().prefix(runsPrefix(job)).keys()).sort();
  }

  it('deletes the old final records of deleted jobs, not recent ones, and nothing of existing jobs', { timeout: 60_000 }, async () => {
    const baseMs = Math.floor((Date.now() - 60_000) / 1000) * 1000;
    // 'kept' exists; its history is over no limit. 'gone' and 'also-gone' were deleted.
    await putJob(client, { name: 'kept', schedule: '0 0 1 1 *', command: 'true' });
    for (let i = 0; i < 3; i++) {
      await putRecord('kept', baseMs + i * 1000, 'succeeded');
      await putRecord('gone', baseMs + i * 1000, 'succeeded');
    }
    await putRecord('also-gone', baseMs, 'failed');
    // Ended 5 minutes ago by the housekeeper's clock: too recent (the name may be in use again).
    await putRecord('recent-gone', Math.floor((Date.now() + HOUR_MS - 5 * 60_000) / 1000) * 1000, 'succeeded');
    const keptBefore = await keysOf('kept');

    housekeeping = startHousekeeping(client, {
      logger: quietLogger, intervalMs: 200, orphanSweepIntervalMs: 0, clock: offsetClock(systemClock, HOUR_MS),
    });
    await waitFor('the orphaned records to be deleted', async () => {
      const left = [...await keysOf('gone'), ...await keysOf('also-gone')];
      return left.length === 0 ? true : undefined;
    }, 20_000, 200);
    expect(await keysOf('kept')).toEqual(keptBefore);
    expect(await keysOf('recent-gone')).toHaveLength(1);
    expect(housekeeping.stats().trimmed).toBeGreaterThanOrEqual(4);
  });
});
