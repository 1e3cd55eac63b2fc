import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { assertWorkerBuilt, isProcessAlive, spawnWorker, type WorkerProcess } from '../support/worker-processes.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { readRun } from '../../shared/history/read.js';
import { retryKey } from '../../shared/keys.js';
import type { RunRecord } from '../../shared/history/records.js';

const TTL_SECONDS = 3;

interface AttemptLine {
  readonly attempt: number;
  readonly worker: string;
  readonly pid: number;
  readonly atMs: number;
  readonly phase: string;
}

/** Lines "<attempt> <worker> <pid> <ms> start|end" appended by the test jobs. */
function readAttempts(file: string): AttemptLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((line) => {
    const [attempt = '0', worker = '', pid = '0', atMs = '0', phase = ''] = line.split(' ');
    return { attempt: Number(attempt), worker, pid: Number(pid), atMs: Number(atMs), phase };
  });
}

/**
 * Issue 5 / docs/scheduler.md "Guarantees": a failed or lost run is retried by policy on another
 * live worker, claimed once per (job, slot, attempt). Real worker processes; a real SIGKILL.
 */
describe.skipIf(!hasStoreUnderTest())('retries on any worker', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let housekeeping: HousekeepingHandle;
  const dir = tempDir('etcron-retries-');
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    assertWorkerBuilt();
    store = await startStoreUnderTest();
    client = clientFor(store);
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 500 });
    for (const id of ['r1', 'r2', 'r3']) workers.push(await spawnWorker(id, store.endpoint, { ttlSeconds: TTL_SECONDS }));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await housekeeping?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  /** A manual run (the master's run-now request) of a job whose schedule never fires during the test. */
  async function runNow(job: string): Promise<number> {
    const slotMs = Math.floor(Date.now() / 1000) * 1000;
    const slot = new Date(slotMs).toISOString();
    await client.put(`/cron/control/run/${job}/${slot}`).value(JSON.stringify({ job, requestId: slot, slot, requestedAtMs: Date.now() }));
    return slotMs;
  }

  function jobCommand(file: string, attemptOne: string): string {
    return [
      `echo "$ETCRON_ATTEMPT $ETCRON_WORKER $$ $(date +%s%3N) start" >> ${file}`,
      `if [ "$ETCRON_ATTEMPT" = 1 ]; then ${attemptOne}; fi`,
      `echo "$ETCRON_ATTEMPT $ETCRON_WORKER $$ $(date +%s%3N) end" >> ${file}`,
    ].join('\n');
  }

  async function finalRecord(job: string, slotMs: number, attempt: number): Promise<RunRecord> {
    return waitFor(`attempt ${attempt} of ${job} to succeed`, async () => {
      const run = (await readRun(client, job, slotMs))?.value;
      return run?.attempt === attempt && run.state === 'succeeded' ? run : undefined;
    }, 20_000, 100);
  }

  it('retries a failed run on another live worker', async () => {
    const file = join(dir.path, 'failed');
    await putJob(client, {
      name: 'retry-failed', schedule: '0 0 1 1 *', retries: { count: 2, backoffInitialMs: 200 },
      command: jobCommand(file, 'exit 3'),
    });
    const slotMs = await runNow('retry-failed');
    const run = await finalRecord('retry-failed', slotMs, 2);
    const lines = readAttempts(file);
    const first = lines.filter((l) => l.attempt === 1);
    const second = lines.filter((l) => l.attempt === 2);
    expect(first.map((l) => l.phase)).toEqual(['start']);
    expect(second.map((l) => l.phase)).toEqual(['start', 'end']);
    expect(second[0]!.worker).not.toBe(first[0]!.worker);
    expect(run.worker).toBe(second[0]!.worker);
    expect(run.previousAttempts).toMatchObject([{ attempt: 1, state: 'failed', worker: first[0]!.worker }]);
    expect(await client.get(retryKey('retry-failed', slotMs)).string()).toBeNull();
  }, 40_000);

  it('retries a run lost with its SIGKILLed worker on another worker, never two attempts at once', async () => {
    const file = join(dir.path, 'lost');
    await putJob(client, {
      name: 'retry-lost', schedule: '0 0 1 1 *', retries: { count: 1, backoffInitialMs: 200 },
      command: jobCommand(file, 'sleep 30'),
    });
    const slotMs = await runNow('retry-lost');
    const first = await waitFor('attempt 1 to start', () => readAttempts(file).find((l) => l.attempt === 1), 15_000);
    const victim = workers.find((w) => w.id === first.worker)!;
    victim.signal('SIGKILL');
    const killedAtMs = Date.now();
    // The job's process group dies with its worker (the wrapper's pipe closes), before any retry.
    await waitFor('attempt 1\'s shell to be gone', () => (isProcessAlive(first.pid) ? undefined : true), 3_000);
    const goneAtMs = Date.now();
    const run = await finalRecord('retry-lost', slotMs, 2);
    const lines = readAttempts(file);
    const second = lines.filter((l) => l.attempt === 2);
    expect(lines.filter((l) => l.attempt === 1).map((l) => l.phase)).toEqual(['start']);
    expect(second.map((l) => l.phase)).toEqual(['start', 'end']);
    expect(second[0]!.worker).not.toBe(victim.id);
    // Never two attempts at once: attempt 2 began after attempt 1's shell was gone and its run marked lost.
    expect(second[0]!.atMs).toBeGreaterThan(goneAtMs);
    const lost = run.previousAttempts?.[0];
    expect(lost).toMatchObject({ attempt: 1, state: 'lost', worker: victim.id });
    expect(second[0]!.atMs).toBeGreaterThanOrEqual(lost!.endedAtMs!);
    // Lost within the lease TTL plus reaper latency, then retried after the backoff.
    expect(lost!.endedAtMs! - killedAtMs).toBeLessThan(TTL_SECONDS * 1000 + 3_000);
    expect(lines.filter((l) => l.attempt > 2)).toEqual([]);
    expect(housekeeping.stats().lost).toBeGreaterThanOrEqual(1);
  }, 40_000);
  it('retries a run whose worker is SIGSTOPped only after attempt 1 stopped running (from the job\'s own ticks)', async () => {
    const file = join(dir.path, 'paused');
    // Attempt 1 writes a tick every 50 ms for up to 30 s (bounded); any tick after attempt 2's start is an overlap.
    const ticking = `i=0; while [ $i -lt 600 ]; do echo "1 $ETCRON_WORKER $$ $(date +%s%3N) tick" >> ${file}; sleep 0.05; i=$((i+1)); done`;
    await putJob(client, {
      name: 'retry-paused', schedule: '0 0 1 1 *', retries: { count: 1, backoffInitialMs: 200 },
      command: jobCommand(file, ticking),
    });
    const slotMs = await runNow('retry-paused');
    const first = await waitFor('attempt 1 to start', () => readAttempts(file).find((l) => l.attempt === 1), 15_000);
    await waitFor('attempt 1 to tick', () => readAttempts(file).some((l) => l.phase === 'tick') ? true : undefined, 5_000, 20);
    const victim = workers.find((w) => w.id === first.worker)!;
    victim.signal('SIGSTOP');
    try {
      const run = await finalRecord('retry-paused', slotMs, 2);
      const lines = readAttempts(file);
      const secondStart = lines.find((l) => l.attempt === 2 && l.phase === 'start');
      expect(secondStart?.worker).not.toBe(victim.id);
      const ticks = lines.filter((l) => l.attempt === 1 && l.phase === 'tick');
      const lastTick = Math.max(...ticks.map((l) => l.atMs));
      console.log(`retry after SIGSTOP: attempt 1's last tick ${secondStart!.atMs - lastTick} ms before attempt 2 started`);
      expect(lastTick, 'attempt 1 still ticked after attempt 2 started').toBeLessThan(secondStart!.atMs);
      expect(isProcessAlive(first.pid)).toBe(false);
      expect(run.previousAttempts?.[0]).toMatchObject({ attempt: 1, state: 'lost', worker: victim.id });
    } finally {
      victim.signal('SIGCONT');
    }
  }, 40_000);
});
