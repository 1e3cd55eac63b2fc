import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { ETCRON_BIN, type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { jobKey, lockKey, runKey, slotId, workerKey } from '../../shared/keys.js';
import { encodeRecord, runIdFor, type LockValue, type RunRecord, type WorkerInfo } from '../../shared/history/index.js';
import { jsonOf, runCli, startMasterProcess, type DaemonProcess } from './cli-harness.js';

// "etcron locks [--rev N]: every lock, its owner worker, lease, TTL left and fencing token — at the
// current or any uncompacted revision. etcron job history NAME --rev N: history as it stood at
// revision N. A timeline of a job's lock acquisitions and releases" (issue #5). The store writes
// below follow the worker's protocol (shared/keys.ts, shared/history/records.ts) step by step,
// so each revision is known exactly and the CLI's answers can be checked against it.

const JOB = 'ticker';
/** Long enough that no test lease expires by itself, even on a loaded machine. */
const LEASE_TTL_SECONDS = 300;
// Recent slots: the leader's housekeeping trims runs older than the job's history age (7 days).
const BASE_MS = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const SLOT_1 = BASE_MS + 1_000;
const SLOT_2 = BASE_MS + 2_000;
const SLOT_3 = BASE_MS + 3_000;

interface LockRow { job: string; slot: string; worker: string; fence: number; ttlSeconds: number | null; leaseId: string }
interface RunRow { slot: string; state: string; worker?: string; fence?: number; exitCode?: number }
interface TimelineRow { type: string; revision: number; slot: string; worker: string; fence: number; cause?: string }

describe.skipIf(!hasStoreUnderTest())('locks, history and timeline at past revisions', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let client: Etcd3;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = new Etcd3({ hosts: store.clientUrl });
    master = await startMasterProcess({ endpoint: store.endpoint, id: 'master-rev' });
    env = { ETCRON_API: master.apiUrl };
  });
  afterAll(async () => {
    await master?.kill('SIGKILL');
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  async function register(worker: string): Promise<string> {
    const lease = client.lease(LEASE_TTL_SECONDS, { autoKeepAlive: false });
    const leaseId = await lease.grant();
    lease.release();
    const info: WorkerInfo = {
      id: worker, tags: [], hostname: 'test', pid: 1, startedAtMs: Date.now(), leaseId, leaseTtlSeconds: LEASE_TTL_SECONDS,
    };
    await client.put(workerKey(worker)).value(encodeRecord(info)).lease(leaseId);
    return leaseId;
  }

  /** The claim txn: run record and lock created together; the header revision is the fence. */
  async function claim(slotMs: number, worker: string, leaseId: string): Promise<number> {
    const slot = slotId(slotMs);
    const runId = runIdFor(JOB, slot, 1);
    const lock: LockValue = { job: JOB, slot, runId, worker, leaseId, attempt: 1 };
    const run: RunRecord = { job: JOB, slot, runId, state: 'running', worker, leaseId, attempt: 1, startedAtMs: slotMs };
    const res = await client
      .if(runKey(JOB, slotMs), 'Create', '==', 0)
      .then(
        client.put(runKey(JOB, slotMs)).value(encodeRecord(run)),
        client.put(lockKey(JOB, slotMs)).value(encodeRecord(lock)).lease(leaseId),
      )
      .commit();
    expect(res.succeeded).toBe(true);
    return Number(res.header.revision);
  }

  async function updateRun(slotMs: number, fields: Partial<RunRecord>, releaseLock: boolean): Promise<number> {
    const key = runKey(JOB, slotMs);
    const current = JSON.parse((await client.get(key).string()) ?? '{}') as RunRecord;
    const ops = [client.put(key).value(encodeRecord({ ...current, ...fields }))];
    const res = releaseLock
      ? await client.if(key, 'Create', '>', 0).then(...ops, client.delete().key(lockKey(JOB, slotMs))).commit()
      : await client.if(key, 'Create', '>', 0).then(...ops).commit();
    return Number(res.header.revision);
  }

  it('shows who held which lock, and what history said, at each revision', { timeout: 180_000 }, async () => {
    // @yearly: no slot falls due during the test, so housekeeping records no missed slots here.
    await client.put(jobKey(JOB)).value(JSON.stringify({ name: JOB, schedule: '@yearly', command: 'echo tick' }));
    const lease1 = await register('w1');
    const lease2 = await register('w2');
    const fence1 = await claim(SLOT_1, 'w1', lease1);
    const finished1 = await updateRun(SLOT_1, { state: 'succeeded', exitCode: 0, endedAtMs: SLOT_1 + 5, outputTail: 'tick 1\n' }, true);
    const fence2 = await claim(SLOT_2, 'w2', lease2);
    expect(fence2).toBeGreaterThan(fence1);

    // At fence1, w1 held slot 1; TTL is unknowable for the past and shown as null.
    const past = jsonOf<{ revision: number; locks: LockRow[] }>(await runCli(['locks', '--rev', String(fence1), '-o', 'json'], env));
    expect(past.revision).toBe(fence1);
    expect(past.locks).toEqual([expect.objectContaining({ job: JOB, slot: slotId(SLOT_1), worker: 'w1', fence: fence1, ttlSeconds: null })]);
    // Now only w2's lock exists, with its lease's remaining TTL.
    const now = jsonOf<{ locks: LockRow[] }>(await runCli(['locks', '-o', 'json'], env));
    expect(now.locks).toHaveLength(1);
    expect(now.locks[0]).toMatchObject({ slot: slotId(SLOT_2), worker: 'w2', fence: fence2, leaseId: lease2 });
    expect(now.locks[0]?.ttlSeconds).toBeGreaterThan(0);
    expect(now.locks[0]?.ttlSeconds).toBeLessThanOrEqual(LEASE_TTL_SECONDS);
    const table = await runCli(['locks', '--rev', String(fence1)], env);
    expect(table.stdout).toContain(`# locks at revision ${fence1}`);
    expect(table.stdout).toMatch(new RegExp(`${JOB}\\s+${slotId(SLOT_1).replace(/\./g, '\\.')}\\s+w1\\s+\\S+\\s+-\\s+${fence1}`));

    // History at fence1: slot 1 running on w1; now: slot 1 succeeded, slot 2 running (newest first).
    const then = jsonOf<{ runs: RunRow[] }>(await runCli(['job', 'history', JOB, '--rev', String(fence1), '-o', 'json'], env));
    expect(then.runs.map((r) => [r.slot, r.state, r.worker])).toEqual([[slotId(SLOT_1), 'running', 'w1']]);
    const current = jsonOf<{ runs: RunRow[] }>(await runCli(['job', 'history', JOB, '-o', 'json'], env));
    expect(current.runs.map((r) => [r.slot, r.state])).toEqual([[slotId(SLOT_2), 'running'], [slotId(SLOT_1), 'succeeded']]);
    const beforeJob = await runCli(['job', 'history', JOB, '--rev', '1'], env);
    expect(beforeJob.code).toBe(3);
    expect(beforeJob.stderr).toContain('not found at revision 1');

    // The output of a finished run.
    const logs = await runCli(['job', 'logs', JOB, slotId(SLOT_1)], env);
    expect(logs.stdout).toBe('tick 1\n');

    // w2's lease expires (revoked here): its lock goes, and the timeline says why.
    await client.leaseClient.leaseRevoke({ ID: lease2 });
    const timeline = jsonOf<{ events: TimelineRow[] }>(await runCli(['job', 'timeline', JOB, '-o', 'json'], env));
    expect(timeline.events.map((e) => [e.type, e.slot, e.worker, e.fence, e.cause])).toEqual([
      ['acquired', slotId(SLOT_1), 'w1', fence1, undefined],
      ['released', slotId(SLOT_1), 'w1', fence1, 'finished'],
      ['acquired', slotId(SLOT_2), 'w2', fence2, undefined],
      ['released', slotId(SLOT_2), 'w2', fence2, 'lease-expired'],
    ]);
    expect(timeline.events[0]?.revision).toBe(fence1);
    expect(timeline.events[1]?.revision).toBe(finished1);
    const workers = jsonOf<{ workers: { id: string }[] }>(await runCli(['workers', '-o', 'json'], env));
    expect(workers.workers.map((w) => w.id)).toEqual(['w1']); // w2's registration went with its lease

    // A revision that is compacted, or not yet written, is refused clearly.
    const head = Number((await client.get(jobKey(JOB)).exec()).header.revision);
    await client.kv.compact({ revision: String(fence1 + 1), physical: true });
    const compacted = await runCli(['locks', '--rev', String(fence1)], env);
    expect(compacted.code).not.toBe(0);
    expect(compacted.stderr).toContain('compacted');
    const future = await runCli(['job', 'history', JOB, '--rev', String(head + 1000)], env);
    expect(future.code).not.toBe(0);
    expect(future.stderr).toContain('future');
  });

  it('follows the output of a live run until it ends', async () => {
    const lease = await register('w3');
    await claim(SLOT_3, 'w3', lease);
    await updateRun(SLOT_3, { outputTail: 'line 1\n' }, false);
    const child = spawn(process.execPath, [ETCRON_BIN, 'job', 'logs', JOB, slotId(SLOT_3), '--follow'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor('first line', () => (out.includes('line 1\n') ? true : undefined), 10_000);
      await updateRun(SLOT_3, { outputTail: 'line 1\nline 2\n' }, false);
      await waitFor('second line', () => (out.includes('line 2\n') ? true : undefined), 10_000);
      expect(child.exitCode).toBeNull(); // still following while the run is live
      await updateRun(SLOT_3, { state: 'succeeded', exitCode: 0, outputTail: 'line 1\nline 2\nline 3\n' }, true);
      const code = await Promise.race([exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 10_000))]);
      expect(code).toBe(0);
      expect(out).toBe('line 1\nline 2\nline 3\n');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
