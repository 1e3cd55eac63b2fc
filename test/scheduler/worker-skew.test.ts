import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, duplicates, historyRecords, putJob, tempDir } from '../support/scheduler-fixtures.js';
import { assertWorkerBuilt, spawnWorker, type WorkerProcess } from '../support/worker-processes.js';

const SKEW_MS = 2_000;
const SLOTS = 25;
/** A slot's start deadline (5 s on-time grace) as the slowest worker's clock sees it, plus 1 s. */
const SETTLE_MS = 5_000 + SKEW_MS + 1_000;

/** Worker clocks skewed by ±2 s never run a slot twice. */
describe.skipIf(!hasStoreUnderTest())('worker clock skew', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const dir = tempDir('etcron-skew-');
  const starts = join(dir.path, 'starts');
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    assertWorkerBuilt();
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

  it('runs each slot exactly once, never earlier than slot - max skew, with workers at -2 s, 0 and +2 s', async () => {
    await putJob(client, {
      name: 'skew', schedule: '* * * * * *',
      command: `echo "$ETCRON_SLOT $ETCRON_WORKER $(date +%s%3N)" >> ${starts}`,
    });
    const offsets = { slow: -SKEW_MS, exact: 0, fast: SKEW_MS };
    for (const [id, offset] of Object.entries(offsets)) {
      // Through the real `etcron worker --clock-offset` command, so the CLI path is covered too.
      workers.push(await spawnWorker(id, store.endpoint, { clockOffsetMs: offset, viaCli: true }));
    }
    const begin = Date.now();
    await waitFor(`${SLOTS} slots`, () => (Date.now() - begin > (SLOTS + 3) * 1000 + SETTLE_MS ? true : undefined), (SLOTS + 20) * 1000, 250);
    // Slots up to the cutoff are past every worker's start deadline, so no new claim of them can
    // begin; wait (bounded) for the runs already claimed to finish, since a claimed run writes its
    // line only once its shell starts, which a loaded machine delays.
    const cutoffMs = Date.now() - SETTLE_MS;
    await waitFor('runs up to the cutoff to finish', async () => {
      const live = (await historyRecords(client, 'skew')).filter((r) => Date.parse(r.slot) <= cutoffMs && ['claimed', 'running'].includes(r.state));
      return live.length === 0 ? true : undefined;
    }, 15_000, 250);
    const allLines = readFileSync(starts, 'utf8').trim().split('\n').map((l) => {
      const [slot = '', worker = '', atMs = '0'] = l.split(' ');
      return { slot, worker, atMs: Number(atMs) };
    });
    expect(duplicates(allLines.map((l) => l.slot))).toEqual([]);
    for (const line of allLines) expect(line.atMs, line.slot).toBeGreaterThanOrEqual(Date.parse(line.slot) - SKEW_MS - 100);
    const lines = allLines.filter((l) => Date.parse(l.slot) <= cutoffMs);
    // No slot missed between the first and the last start (a slow clock must not leave gaps).
    const slots = lines.map((l) => Date.parse(l.slot)).sort((a, b) => a - b);
    const first = slots[0]!;
    const last = slots[slots.length - 1]!;
    expect(slots.length).toBe((last - first) / 1000 + 1);
    expect(slots.length).toBeGreaterThanOrEqual(SLOTS);
    expect(new Set(lines.map((l) => l.worker)).size).toBeGreaterThan(1);
    const records = (await historyRecords(client, 'skew')).filter((r) => Date.parse(r.slot) <= cutoffMs);
    // Every start has its run record, claimed by the worker that ran it, and in a started state.
    const mismatched = lines.filter((line) => {
      const record = records.find((r) => r.slot === line.slot);
      return record?.worker !== line.worker || !['succeeded', 'running', 'claimed'].includes(record.state);
    }).map((line) => ({ line, record: records.find((r) => r.slot === line.slot) }));
    expect(mismatched).toEqual([]);
    const startedRecords = records.filter((r) => Date.parse(r.slot) <= last && ['succeeded', 'running', 'claimed'].includes(r.state));
    expect(startedRecords.length).toBe(lines.length);
    const late = lines.map((l) => l.atMs - Date.parse(l.slot));
    console.log(JSON.stringify({ slots: lines.length, lateMsMin: Math.min(...late), lateMsMax: Math.max(...late) }));
  }, 90_000);
});
