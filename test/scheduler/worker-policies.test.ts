import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { isProcessAlive } from '../support/worker-processes.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { readLocks } from '../../shared/history/read.js';
import type { RunRecord } from '../../shared/history/records.js';
import { TRUNCATED_MARKER } from '../../worker/executor/fit-output-tail.js';

/** Overlap policies, timeouts, retries, kill and output tail, each on its own job (docs/scheduler.md). */
describe.skipIf(!hasStoreUnderTest())('worker run policies', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const workers: WorkerHandle[] = [];
  const dir = tempDir('etcron-policies-');

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    for (const id of ['p1', 'p2']) workers.push(await startWorker({ id, client: { endpoints: store.endpoint }, logger: quietLogger }));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  async function until(job: string, what: string, check: (records: RunRecord[]) => boolean, timeoutMs = 15_000): Promise<RunRecord[]> {
    return waitFor(what, async () => {
      const records = await historyRecords(client, job);
      return check(records) ? records : undefined;
    }, timeoutMs, 100);
  }

  it('timeout kills the whole process group, including background children', async () => {
    const pids = join(dir.path, 'timeout-pids');
    await putJob(client, {
      name: 'slow', schedule: '@every 3s', timeoutMs: 500, killGraceMs: 200,
      command: `sleep 30 & echo $! >> ${pids}; trap '' TERM; sleep 30`,
    });
    const records = await until('slow', 'a timed-out run', (rs) => rs.some((r) => r.state === 'timeout'));
    const run = records.find((r) => r.state === 'timeout')!;
    expect(run.reason).toContain('timed out');
    expect(run.endedAtMs! - run.startedAtMs!).toBeLessThan(2_000);
    const background = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    await waitFor('background children to be gone', () => (background.every((p) => !isProcessAlive(p)) ? true : undefined), 3_000);
    await client.delete().key('/cron/jobs/slow');
  });

  interface RunSpan { readonly slot: string; readonly startMs: number; endMs?: number; termMs?: number }

  /** "start|end|term <slot> <ms>" lines that the policy jobs below append to their own file. */
  function readSpans(file: string): RunSpan[] {
    if (!existsSync(file)) return [];
    const spans = new Map<string, RunSpan>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [phase, slot = '', at = ''] = line.trim().split(' ');
      if (phase === 'start') spans.set(slot, { slot, startMs: Number(at) });
      const span = spans.get(slot);
      if (span !== undefined && phase === 'end') span.endMs = Number(at);
      if (span !== undefined && phase === 'term') span.termMs = Number(at);
    }
    return [...spans.values()].sort((a, b) => a.startMs - b.startMs);
  }

  function spanCommand(file: string, body: string): string {
    return `echo "start $ETCRON_SLOT $(date +%s%3N)" >> ${file}; ${body}; echo "end $ETCRON_SLOT $(date +%s%3N)" >> ${file}`;
  }

  it('Forbid skips a slot while the previous run holds its lock: the job itself never runs twice at once', async () => {
    const file = join(dir.path, 'forbid');
    await putJob(client, { name: 'forbid', schedule: '* * * * * *', overlap: 'Forbid', command: spanCommand(file, 'sleep 2.5') });
    const records = await until('forbid', 'skipped slots and finished runs', (rs) =>
      rs.filter((r) => r.state === 'skipped').length >= 2 && rs.filter((r) => r.state === 'succeeded').length >= 2);
    await client.delete().key('/cron/jobs/forbid');
    const spans = readSpans(file).filter((s) => s.endMs !== undefined);
    expect(spans.length).toBeGreaterThanOrEqual(2);
    // From the job's own output: each run started after the previous one had ended.
    for (let i = 1; i < spans.length; i++) expect(spans[i]!.startMs, spans[i]!.slot).toBeGreaterThanOrEqual(spans[i - 1]!.endMs!);
    const skipped = records.filter((r) => r.state === 'skipped');
    expect(skipped[0]?.reason).toMatch(/overlap Forbid: forbid@.* still running/);
    const ranSlots = new Set(readSpans(file).map((s) => s.slot));
    expect(skipped.filter((r) => ranSlots.has(r.slot)), 'slots recorded skipped that ran').toEqual([]);
  });

  it('Replace stops the running run when the next slot starts: the old run gets SIGTERM as the new one starts', async () => {
    const file = join(dir.path, 'replace');
    const body = `trap 'echo "term $ETCRON_SLOT $(date +%s%3N)" >> ${file}; exit 143' TERM; sleep 30 & wait`;
    await putJob(client, { name: 'replace', schedule: '@every 2s', overlap: 'Replace', command: spanCommand(file, body), killGraceMs: 1_000 });
    const records = await until('replace', 'two replaced runs', (rs) => rs.filter((r) => r.state === 'killed').length >= 2);
    await client.delete().key('/cron/jobs/replace');
    expect(records.find((r) => r.state === 'killed')?.reason).toContain('Replace');
    const spans = readSpans(file);
    const replaced = spans.filter((s) => s.termMs !== undefined);
    expect(replaced.length).toBeGreaterThanOrEqual(2);
    for (const old of replaced) {
      const next = spans.find((s) => s.startMs >= old.startMs && s.slot !== old.slot);
      expect(next, `a run that replaced ${old.slot}`).toBeDefined();
      // The old run is told to stop around the new one's start (within the clock resolution and
      // the store round trips of the claim), never long before or after.
      expect(Math.abs(old.termMs! - next!.startMs), old.slot).toBeLessThan(3_000);
      expect(old.endMs, 'a replaced run does not run to its end').toBeUndefined();
    }
    const live = (await readLocks(client, { job: 'replace' })).locks;
    expect(live.length).toBeLessThanOrEqual(1);
  });

  it('BufferOne runs a slot that came due during a run once that run ends, never beside it', async () => {
    const file = join(dir.path, 'buffer');
    await putJob(client, { name: 'buffer', schedule: '@every 2s', overlap: 'BufferOne', command: spanCommand(file, 'sleep 3') });
    await waitFor('3 finished buffered runs', () => (readSpans(file).filter((s) => s.endMs !== undefined).length >= 3 ? true : undefined), 20_000);
    await client.delete().key('/cron/jobs/buffer');
    const spans = readSpans(file);
    for (let i = 1; i < spans.length; i++) {
      const previous = spans[i - 1]!;
      if (previous.endMs === undefined) continue;
      // From the job's own output: started after the previous run ended, although due before.
      expect(spans[i]!.startMs, spans[i]!.slot).toBeGreaterThanOrEqual(previous.endMs);
      expect(Date.parse(spans[i]!.slot), spans[i]!.slot).toBeLessThan(previous.endMs);
    }
  });

  /** What the master's `job run` writes: a run-now request for the current instant. */
  async function runNow(job: string): Promise<void> {
    const slot = new Date().toISOString();
    await client.put(`/cron/control/run/${job}/${slot}`).value(JSON.stringify({ job, requestId: slot, slot, requestedAtMs: Date.now() }));
  }

  it('retries a failing run with backoff, each attempt with a new fence', async () => {
    const attempts = join(dir.path, 'attempts');
    await putJob(client, {
      name: 'flaky', schedule: '0 0 1 1 *',
      retries: { count: 2, backoffInitialMs: 100 },
      command: `echo "$ETCRON_ATTEMPT $ETCRON_FENCE" >> ${attempts}; exit 3`,
    });
    await runNow('flaky');
    const records = await until('flaky', 'the last attempt', (rs) => rs.some((r) => r.attempt === 3 && r.state === 'failed'));
    const last = records.find((r) => r.attempt === 3)!;
    expect(last.exitCode).toBe(3);
    const lines = readFileSync(attempts, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
    expect(lines.map((l) => l[0])).toEqual([1, 2, 3]);
    const fences = lines.map((l) => l[1]!);
    expect(fences[1]!).toBeGreaterThan(fences[0]!);
    expect(fences[2]!).toBeGreaterThan(fences[1]!);
    await client.delete().key('/cron/jobs/flaky');
  });

  it('a run printing 1 MiB of binary output ends with a cut tail, releases its lock, and the next Forbid slot runs', { timeout: 60_000 }, async () => {
    const starts = join(dir.path, 'binary-starts');
    await putJob(client, {
      name: 'binary', schedule: '* * * * * *', overlap: 'Forbid', outputTailBytesMax: 1024 * 1024,
      command: `echo "$ETCRON_SLOT" >> ${starts}; head -c 1048576 /dev/urandom; echo; echo "end-of-$ETCRON_SLOT"`,
    });
    // Two finished runs, each slot started once (the job's own record of its starts).
    const records = await until('binary', 'two finished runs', (rs) => rs.filter((r) => r.state === 'succeeded').length >= 2, 30_000);
    const started = readFileSync(starts, 'utf8').trim().split('\n');
    expect(new Set(started).size).toBe(started.length);
    expect(started.length).toBeGreaterThanOrEqual(2);
    const run = records.find((r) => r.state === 'succeeded')!;
    expect(run.outputTail?.startsWith(TRUNCATED_MARKER)).toBe(true);
    expect(run.outputTail).toContain(`end-of-${run.slot}`);
    expect(Buffer.byteLength(JSON.stringify(run.outputTail))).toBeLessThanOrEqual(1024 * 1024);
    await client.delete().key('/cron/jobs/binary');
    await waitFor('no lock left', async () => ((await readLocks(client, { job: 'binary' })).locks.length === 0 ? true : undefined), 15_000);
  });

  it('kill (deleting the run\'s lock key) stops the run and records it killed; the output tail is bounded', async () => {
    await putJob(client, {
      name: 'killme', schedule: '0 0 1 1 *', outputTailBytesMax: 1024,
      command: 'head -c 100000 /dev/zero | tr "\\0" x; echo; echo tail-marker; sleep 30',
    });
    await runNow('killme');
    const locks = await waitFor('a lock', async () => {
      const view = await readLocks(client, { job: 'killme' });
      return view.locks.length > 0 ? view.locks : undefined;
    });
    expect(locks[0]!.ttlSecondsLeft).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await client.delete().key(locks[0]!.key);
    const records = await until('killme', 'a killed run', (rs) => rs.some((r) => r.state === 'killed'));
    const run = records.find((r) => r.state === 'killed')!;
    expect(run.reason).toContain('job kill');
    expect(Buffer.byteLength(run.outputTail ?? '')).toBeLessThanOrEqual(1024);
    expect(run.outputTail).toContain('tail-marker');
    await client.delete().key('/cron/jobs/killme');
  });
});

describe.skipIf(!hasStoreUnderTest())('worker control requests', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    for (const id of ['c1', 'c2', 'c3']) workers.push(await startWorker({ id, client: { endpoints: store.endpoint }, logger: quietLogger }));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  it('runs a job once on a run-now request, at the request\'s slot, and streams its output tail while it runs', async () => {
    await putJob(client, { name: 'manual', schedule: '0 0 1 1 *', command: 'echo first; sleep 1.5; echo second' });
    const slot = new Date(Math.floor(Date.now())).toISOString();
    const lease = client.lease(60, { autoKeepAlive: false });
    await lease.put(`/cron/control/run/manual/req-1`).value(JSON.stringify({ job: 'manual', requestId: 'req-1', slot, requestedAtMs: Date.now() }));
    const live = await waitFor('live output in the running record', async () => {
      const records = await historyRecords(client, 'manual');
      const r = records.find((x) => x.slot === slot);
      return r?.state === 'running' && r.outputTail?.includes('first') ? r : undefined;
    }, 10_000, 100);
    expect(live.outputTail).not.toContain('second');
    const done = await waitFor('the manual run to finish', async () => {
      const r = (await historyRecords(client, 'manual')).find((x) => x.slot === slot);
      return r?.state === 'succeeded' ? r : undefined;
    }, 10_000, 100);
    expect(done.outputTail).toContain('second');
    expect((await historyRecords(client, 'manual')).length).toBe(1);
    await lease.revoke();
  });
});
