import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { ETCRON_BIN, type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { apiGet, jsonOf, runCli, startMasterProcess, startWorkerProcess, type DaemonProcess } from './cli-harness.js';

// `job kill`, `job pause` / `resume`, `workers` and `job logs` end to end with a real worker
// (issue #5, "job pause, job resume, job run (now), job kill, job logs").

interface LockRow { job: string; slot: string; runId: string; worker: string; fence: number }
interface RunRow { slot: string; runId: string; state: string; reason?: string; worker?: string }
interface WorkerRow { id: string; tags: string[]; running: string[] }

describe.skipIf(!hasStoreUnderTest())('controlling runs from the CLI', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let worker: DaemonProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    [master, worker] = await Promise.all([
      startMasterProcess({ endpoint: store.endpoint, id: 'm-control' }),
      startWorkerProcess({ endpoint: store.endpoint, id: 'w-control', leaseTtlSeconds: 3, tags: 'linux,blue' }),
    ]);
    env = { ETCRON_API: master.apiUrl };
  });
  afterAll(async () => {
    await worker?.kill('SIGKILL');
    await master?.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  // Polls go to the API directly: the commands under test are run through the CLI below, and a
  // CLI process per poll is slow on a loaded machine.
  const locksOf = async (job: string): Promise<LockRow[]> =>
    (await apiGet<{ locks: LockRow[] }>(`${master.apiUrl}/v1/locks`)).locks.filter((l) => l.job === job);
  const historyOf = async (job: string): Promise<RunRow[]> =>
    (await apiGet<{ runs: RunRow[] }>(`${master.apiUrl}/v1/jobs/${job}/history`)).runs;

  it('kills a live run, pauses and resumes the job, and shows the run output', { timeout: 180_000 }, async () => {
    const add = await runCli([
      'job', 'add', 'sleeper', '--schedule', '* * * * * *', '--overlap', 'Forbid', '--tags', 'blue',
      '--command', 'echo "started $ETCRON_SLOT"; sleep 30', '--kill-grace', '1s', '--late-start', '0s',
    ], env);
    expect(add.code, add.stderr).toBe(0);
    const live = await waitFor('a live run', async () => (await locksOf('sleeper'))[0], 15_000);
    expect(live.worker).toBe('w-control');
    // The claim creates the lock with a `claimed` record; the worker writes `running` after it
    // spawns the command, so wait (bounded) for that write before reading history through the CLI.
    await waitFor('the live run recorded running', async () =>
      (await historyOf('sleeper')).find((r) => r.runId === live.runId && r.state === 'running'), 15_000);

    const workers = jsonOf<{ workers: WorkerRow[] }>(await runCli(['workers', '-o', 'json'], env)).workers;
    const history = await runCli(['job', 'history', 'sleeper'], env);
    expect(history.stdout).toMatch(new RegExp(`${live.slot.replace(/\./g, '\\.')}\\s+running\\s+1\\s+w-control\\s+${live.fence}`));
    expect(workers).toEqual([expect.objectContaining({ id: 'w-control', tags: ['linux', 'blue'] })]);
    expect(workers[0]?.running).toContain(live.runId);

    // Pause first so that Forbid does not start the next slot right after the kill.
    const pause = await runCli(['job', 'pause', 'sleeper'], env);
    expect(pause.code, pause.stderr).toBe(0);
    const kill = await runCli(['job', 'kill', 'sleeper'], env);
    expect(kill.code, kill.stderr).toBe(0);
    expect(kill.stdout).toContain(`killing ${live.runId} on w-control`);
    const killed = await waitFor('the run recorded killed', async () =>
      (await historyOf('sleeper')).find((r) => r.runId === live.runId && r.state === 'killed'), 15_000);
    expect(killed.reason).toContain('kill');
    const logs = await runCli(['job', 'logs', 'sleeper', live.slot], env);
    const record = await apiGet<unknown>(`${master.apiUrl}/v1/jobs/sleeper/runs/${live.slot}`);
    expect(logs.stdout, JSON.stringify(record) + worker.output().slice(-3000)).toBe(`started ${live.slot}\n`);

    // Paused: the lock is gone and no slot is claimed while paused (watched over 3 slots); the
    // leader's housekeeping records the paused slots as skipped instead.
    expect(await locksOf('sleeper')).toEqual([]);
    const started = (runs: RunRow[]): RunRow[] => runs.filter((r) => r.state !== 'skipped' && r.state !== 'missed');
    const startedBefore = started(await historyOf('sleeper')).length;
    const pausedUntil = Date.now() + 3_000;
    while (Date.now() < pausedUntil) {
      expect(await locksOf('sleeper')).toEqual([]);
    }
    const whilePaused = await historyOf('sleeper');
    expect(started(whilePaused)).toHaveLength(startedBefore);
    // Housekeeping records a slot only once it is past its start deadline (5 s) plus a 5 s skew
    // margin (docs/scheduler.md), so wait for the record: those 10 s plus a margin for a loaded machine.
    await waitFor('a paused slot recorded as skipped', async () =>
      (await historyOf('sleeper')).find((r) => r.state === 'skipped' && r.reason === 'job paused'), 30_000, 200);

    const resume = await runCli(['job', 'resume', 'sleeper'], env);
    expect(resume.code, resume.stderr).toBe(0);
    const next = await waitFor('a run after resume', async () => (await locksOf('sleeper'))[0], 15_000);
    expect(next.fence).toBeGreaterThan(live.fence);
    const killAgain = await runCli(['job', 'kill', 'sleeper', next.runId, '-o', 'json'], env);
    expect(jsonOf<{ killed: LockRow[] }>(killAgain).killed.map((k) => k.runId)).toEqual([next.runId]);
    const missing = await runCli(['job', 'kill', 'sleeper', 'sleeper@2020-01-01T00:00:00.000Z#1'], env);
    expect(missing.code).toBe(3);
    await runCli(['job', 'rm', 'sleeper'], env);
  });

  it('runs a paused job now on request and follows its output live', { timeout: 120_000 }, async () => {
    const add = await runCli([
      'job', 'add', 'manual', '--schedule', '@yearly', '--paused',
      '--command', 'echo "first $ETCRON_SLOT"; sleep 6; echo second',
    ], env);
    expect(add.code, add.stderr).toBe(0);
    const run = jsonOf<{ requested: { slot: string } }>(await runCli(['job', 'run', 'manual', '-o', 'json'], env));
    const slot = run.requested.slot;
    // The manual run takes the requested slot and is started once.
    const live = await waitFor('the manual run to start', async () =>
      (await historyOf('manual')).find((r) => r.slot === slot && r.state === 'running'), 15_000);
    expect(live.worker).toBe('w-control');

    const child = spawn(process.execPath, [ETCRON_BIN, 'job', 'logs', 'manual', slot, '--follow'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      // The first line arrives while the run is still going: output is live, not only at the end.
      await waitFor('first line, live', () => (out.includes(`first ${slot}\n`) ? true : undefined), 10_000);
      expect(out).not.toContain('second');
      const code = await Promise.race([exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 15_000))]);
      expect(code).toBe(0);
      expect(out).toBe(`first ${slot}\nsecond\n`);
    } finally {
      child.kill('SIGKILL');
    }
    const runs = (await historyOf('manual')).filter((r) => r.slot === slot);
    expect(runs.map((r) => r.state)).toEqual(['succeeded']);
  });
});
