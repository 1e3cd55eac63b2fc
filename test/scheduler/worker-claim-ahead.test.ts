import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, percentile, putJob, quietLogger, readStarts, tempDir } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import type { RunRecord } from '../../shared/history/records.js';

/** The job's shell prints its slot, worker, fence and the instant it ran. */
const startLine = (file: string): string => `echo "$ETCRON_SLOT $ETCRON_WORKER $ETCRON_FENCE $(date +%s%3N)" >> ${file}`;

/** A record claimed ahead of its slot and not started yet. */
async function heldClaim(client: Etcd3, job: string): Promise<RunRecord | undefined> {
  const nowMs = Date.now();
  return (await historyRecords(client, job)).find((r) => r.state === 'claimed' && Date.parse(r.slot) > nowMs + 1_000);
}

/**
 * Issue 15: for jobs whose runs may overlap, the preferred worker claims a slot before its start
 * instant and starts the run at the instant, so the store's round trip is not in the lateness.
 * Never before the slot; a job paused before its slot withdraws the claim; a clean stop hands the
 * held slot to another worker, which runs it on time.
 */
describe.skipIf(!hasStoreUnderTest())('claiming ahead of the slot', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const dir = tempDir('etcron-ahead-');
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  afterAll(async () => {
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  const worker = async (id: string, claimAheadMs: number): Promise<WorkerHandle> => {
    const handle = await startWorker({ id, client: { endpoints: store.endpoint }, logger: quietLogger, claimAheadMs, leaseTtlSeconds: 3 });
    workers.push(handle);
    return handle;
  };

  it('claims before the slot and starts the run at it, never earlier', { timeout: 60_000 }, async () => {
    const starts = join(dir.path, 'every-second');
    await putJob(client, { name: 'ahead-1s', schedule: '* * * * * *', command: startLine(starts) });
    await worker('ahead-a', 1_000);
    // Slots due when the worker started are caught up at once; the ones after are claimed ahead.
    const fromMs = Date.now() + 1_500;
    const ahead = (): ReturnType<typeof readStarts> => readStarts(starts).filter((l) => Date.parse(l.slot) >= fromMs);
    await waitFor('six runs after the start', () => (ahead().length >= 6 ? true : undefined), 30_000, 50);
    await putJob(client, { name: 'ahead-1s', schedule: '* * * * * *', command: startLine(starts), paused: true });
    const lines = readStarts(starts);
    for (const line of lines) {
      // The shell's own clock: every run began at or after its slot.
      expect(line.atMs ?? 0, `run of ${line.slot}`).toBeGreaterThanOrEqual(Date.parse(line.slot));
    }
    const records = (await historyRecords(client, 'ahead-1s')).filter((r) => Date.parse(r.slot) >= fromMs);
    const claimedAhead = records.filter((r) => r.claimedAtMs !== undefined && r.claimedAtMs < Date.parse(r.slot));
    expect(claimedAhead.map((r) => r.slot), 'runs claimed before their slot').toEqual(records.map((r) => r.slot));
    const lateness = ahead().map((l) => (l.atMs ?? 0) - Date.parse(l.slot));
    console.log(`claim ahead: ${lateness.length} runs, start lateness p50 ${percentile(lateness, 50)} ms, max ${Math.max(...lateness)} ms`);
  });

  it('withdraws a held claim when its job is paused before the slot', { timeout: 60_000 }, async () => {
    const starts = join(dir.path, 'paused');
    await putJob(client, { name: 'ahead-paused', schedule: '*/10 * * * * *', command: startLine(starts) });
    await worker('ahead-b', 9_000);
    const held = await waitFor('a claim held for a coming slot', () => heldClaim(client, 'ahead-paused'), 20_000, 50);
    await putJob(client, { name: 'ahead-paused', schedule: '*/10 * * * * *', command: startLine(starts), paused: true });
    await waitFor('the slot to pass', () => (Date.now() > Date.parse(held.slot) + 1_000 ? true : undefined), 15_000, 50);
    await waitFor('the held claim withdrawn', async () => (
      (await historyRecords(client, 'ahead-paused')).some((r) => r.slot === held.slot) ? undefined : true), 5_000, 50);
    expect(readStarts(starts).filter((l) => l.slot === held.slot)).toEqual([]);
  });

  it('hands a held slot to another worker on a clean stop; it runs there at its instant', { timeout: 60_000 }, async () => {
    const starts = join(dir.path, 'handed');
    await putJob(client, { name: 'ahead-handed', schedule: '*/10 * * * * *', command: startLine(starts) });
    await worker('ahead-c', 9_000);
    await worker('ahead-d', 9_000);
    const held = await waitFor('a claim held for a coming slot', () => heldClaim(client, 'ahead-handed'), 20_000, 50);
    const holder = workers.find((w) => w.id === held.worker);
    if (holder === undefined) throw new Error(`claim held by unknown worker ${String(held.worker)}`);
    await holder.stop();
    workers.splice(workers.indexOf(holder), 1);
    const other = workers.find((w) => w.id === 'ahead-c' || w.id === 'ahead-d');
    const ran = await waitFor('the slot run by the other worker', () => readStarts(starts).find((l) => l.slot === held.slot), 20_000, 50);
    expect(ran.worker).toBe(other?.id);
    expect(ran.atMs ?? 0).toBeGreaterThanOrEqual(Date.parse(held.slot));
    const record = await waitFor('its final record', async () => (await historyRecords(client, 'ahead-handed'))
      .find((r) => r.slot === held.slot && r.state === 'succeeded'), 10_000, 50);
    expect(record.attempt).toBe(2);
    expect(record.previousAttempts?.map((a) => [a.worker, a.state])).toEqual([[held.worker, 'killed']]);
    expect(readStarts(starts).filter((l) => l.slot === held.slot)).toHaveLength(1);
  });
});
