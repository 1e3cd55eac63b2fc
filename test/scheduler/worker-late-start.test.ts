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
import type { RunRecord } from '../../shared/history/records.js';

/** The worker stays registered, its session alive, through the pause. */
const TTL_SECONDS = 20;
const PAUSE_MS = 10_000;

/**
 * Issue 15: a slot late because its worker was busy starts late instead of being dropped. The only
 * worker is SIGSTOPped for 10 s within its lease (as a saturated event loop would be): slots that
 * came due meanwhile are started on resume, 5-10 s late, and recorded with that lateness; the same
 * slots of a job that sets `lateStartMs: 0` are recorded missed, as before the limit existed.
 */
describe.skipIf(!hasStoreUnderTest())('late starts under load', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle;
  let worker: WorkerProcess | undefined;
  const dir = tempDir('etcron-late-start-');
  const startsOf = (job: string): string => join(dir.path, `${job}.starts`);

  beforeAll(async () => {
    assertWorkerBuilt();
    store = await startStoreUnderTest();
    client = clientFor(store);
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 500 });
    worker = await spawnWorker('late-1', store.endpoint, { ttlSeconds: TTL_SECONDS });
  });

  afterAll(async () => {
    await worker?.stop();
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('starts the slots a paused worker had in view once it resumes; a job with no late start records them missed', async () => {
    const command = (job: string): string => `echo "$ETCRON_SLOT $ETCRON_WORKER $ETCRON_FENCE" >> ${startsOf(job)}`;
    await putJob(client, { name: 'late-ok', schedule: '* * * * * *', command: command('late-ok') });
    await putJob(client, { name: 'late-strict', schedule: '* * * * * *', command: command('late-strict'), catchUp: { lateStartMs: 0 } });
    await waitFor('both jobs running', () =>
      (readStarts(startsOf('late-ok')).length > 0 && readStarts(startsOf('late-strict')).length > 0 ? true : undefined), 15_000);
    const pausedAtMs = Date.now();
    worker!.signal('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    worker!.signal('SIGCONT');
    const resumedAtMs = Date.now();
    // Slots at least 1 s into the pause and more than the 5 s on-time grace before the resume.
    const firstMs = Math.ceil(pausedAtMs / 1000) * 1000 + 1_000;
    const lastMs = Math.floor((resumedAtMs - 6_000) / 1000) * 1000;
    expect(lastMs).toBeGreaterThan(firstMs);
    const slots: number[] = [];
    for (let slotMs = firstMs; slotMs <= lastMs; slotMs += 1000) slots.push(slotMs);
    const recordsOf = (job: string, state: RunRecord['state']): Promise<RunRecord[]> => waitFor(`${job}'s ${state} records`, async () => {
      const found = await Promise.all(slots.map((slotMs) => readRun(client, job, slotMs)));
      return found.every((r) => r?.value.state === state) ? found.map((r) => r!.value) : undefined;
    }, 25_000, 250);

    const started = await recordsOf('late-ok', 'succeeded');
    const okLines = readStarts(startsOf('late-ok'));
    for (const [index, slotMs] of slots.entries()) {
      const slot = new Date(slotMs).toISOString();
      expect(okLines.filter((l) => l.slot === slot), `late-ok ran ${slot} once`).toHaveLength(1);
      // The record keeps the lateness: started after the resume, more than the grace after the slot.
      expect(started[index]!.startedAtMs! - slotMs).toBeGreaterThan(5_000);
      expect(started[index]!.startedAtMs!).toBeGreaterThanOrEqual(resumedAtMs - 1_000);
    }

    const missed = await recordsOf('late-strict', 'missed');
    const strictLines = readStarts(startsOf('late-strict'));
    for (const [index, slotMs] of slots.entries()) {
      const slot = new Date(slotMs).toISOString();
      expect(strictLines.some((l) => l.slot === slot), `late-strict did not run ${slot}`).toBe(false);
      expect(missed[index]!.reason).toMatch(/^outside-catch-up-window/);
    }
  }, 60_000);
});
