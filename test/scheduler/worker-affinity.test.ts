import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { apiGet, runCli, startMasterProcess, startWorkerProcess, type DaemonProcess } from './cli-harness.js';

// Worker affinity (issue 13, item 7): a job's preferWorkers names the worker that claims each slot
// at once while it lives; without affinity rendezvous hashing would split the slots between the
// two workers. When the preferred worker dies, the other takes over.

interface RunRow { slot: string; state: string; worker?: string }

describe.skipIf(!hasStoreUnderTest())('worker affinity (preferWorkers)', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let w1: DaemonProcess;
  let w2: DaemonProcess;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    [master, w1, w2] = await Promise.all([
      startMasterProcess({ endpoint: store.endpoint, id: 'm-affinity' }),
      // A long takeover delay: on a loaded machine w2 may claim late, and w1 taking over a slot
      // after its delay would be correct behaviour, not a failure of affinity.
      startWorkerProcess({ endpoint: store.endpoint, id: 'w1', extraArgs: ['--takeover-delay', '4000'] }),
      startWorkerProcess({ endpoint: store.endpoint, id: 'w2' }),
    ]);
  });
  afterAll(async () => {
    for (const daemon of [w1, w2, master]) await daemon?.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  const startedRuns = async (): Promise<RunRow[]> =>
    (await apiGet<{ runs: RunRow[] }>(`${master.apiUrl}/v1/jobs/pinned/history?limit=100`)).runs
      .filter((r) => r.worker !== undefined && r.state !== 'missed' && r.state !== 'skipped');

  it('runs every slot on the preferred live worker, and on the other once it is gone', async () => {
    await waitFor('both workers registered', async () => {
      const { workers } = await apiGet<{ workers: { id: string }[] }>(`${master.apiUrl}/v1/workers`);
      return workers.length === 2 ? true : undefined;
    });
    const add = await runCli([
      'job', 'add', 'pinned', '--schedule', '* * * * * *', '--command', 'true', '--prefer-workers', 'w2,w1',
    ], { ETCRON_API: master.apiUrl });
    expect(add.code, add.stderr).toBe(0);
    const runs = await waitFor('six runs', async () => {
      const started = await startedRuns();
      return started.length >= 6 ? started : undefined;
    }, 30_000, 200);
    // With hashing alone, six slots all on one of two workers would be a 1-in-32 chance.
    expect(runs.map((r) => r.worker)).toEqual(runs.map(() => 'w2'));

    await w2.kill('SIGKILL');
    const killedAt = Date.now();
    const taken = await waitFor('a run on w1', async () =>
      (await startedRuns()).find((r) => r.worker === 'w1' && Date.parse(r.slot) >= killedAt - 1_000), 30_000, 200);
    expect(taken.worker).toBe('w1');
  }, 90_000);
});
