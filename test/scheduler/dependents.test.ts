import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { startDependents, type DependentsHandle } from '../../master/triggers/dependents.js';
import { systemClock } from '../../shared/clock.js';

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '') : []);

/** Issue 13 item 5: a dependent job runs once per parent run that ended as it asks. */
describe.skipIf(!hasStoreUnderTest())('dependent jobs', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let worker: WorkerHandle;
  let dependents: DependentsHandle | undefined;
  const dir = tempDir('etcron-dependents-');

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    worker = await startWorker({ id: 'd1', client: { endpoints: store.endpoint }, logger: quietLogger });
    dependents = await startDependents(client, { clock: systemClock, logger: quietLogger });
  });

  afterAll(async () => {
    await dependents?.stop();
    await worker?.stop();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  it('runs the child once after each successful parent run, naming the parent run', async () => {
    const childFile = join(dir.path, 'child');
    await putJob(client, { name: 'extract', schedule: '@every 2s', command: 'true' });
    await putJob(client, {
      name: 'load', schedule: '@triggered', after: { job: 'extract' }, command: `echo "$ETCRON_TRIGGERED_BY" >> ${childFile}`,
    });
    await waitFor('three child runs', () => (lines(childFile).length >= 3 ? true : undefined), 20_000, 100);
    await client.delete().key('/cron/jobs/extract');
    const parents = (await historyRecords(client, 'extract')).filter((r) => r.state === 'succeeded').map((r) => r.runId);
    const children = await waitFor('every child run recorded', async () => {
      const records = (await historyRecords(client, 'load')).filter((r) => r.state === 'succeeded');
      return records.length >= lines(childFile).length ? records : undefined;
    }, 10_000, 100);
    // One run per parent run, each naming its parent, in its record and in its environment.
    const triggeredBy = children.map((r) => r.triggeredBy);
    expect(new Set(triggeredBy).size).toBe(triggeredBy.length);
    expect(triggeredBy.every((id) => id !== undefined && parents.includes(id))).toBe(true);
    expect(lines(childFile).sort()).toEqual([...triggeredBy].sort());
    await client.delete().key('/cron/jobs/load');
  });

  it('follows failures with on: failure, and not with on: success', async () => {
    const onFailure = join(dir.path, 'on-failure');
    const onSuccess = join(dir.path, 'on-success');
    await putJob(client, { name: 'flaky-parent', schedule: '@every 2s', command: 'exit 4' });
    await putJob(client, { name: 'cleanup', schedule: '@triggered', after: { job: 'flaky-parent', on: 'failure' }, command: `echo x >> ${onFailure}` });
    await putJob(client, { name: 'publish', schedule: '@triggered', after: { job: 'flaky-parent', on: 'success' }, command: `echo x >> ${onSuccess}` });
    await waitFor('two cleanup runs', () => (lines(onFailure).length >= 2 ? true : undefined), 20_000, 100);
    expect(lines(onSuccess)).toEqual([]);
    for (const job of ['flaky-parent', 'cleanup', 'publish']) await client.delete().key(`/cron/jobs/${job}`);
  });

  it('a new leader triggers the children of runs that ended while none led', async () => {
    await dependents?.stop();
    dependents = undefined;
    const childFile = join(dir.path, 'late');
    await putJob(client, { name: 'nightly', schedule: '@every 2s', command: 'true' });
    await putJob(client, { name: 'report', schedule: '@triggered', after: { job: 'nightly', on: 'always' }, command: `echo "$ETCRON_TRIGGERED_BY" >> ${childFile}` });
    const parent = await waitFor('a parent run with no leader', async () => (await historyRecords(client, 'nightly')).find((r) => r.state === 'succeeded'), 20_000, 100);
    expect(lines(childFile)).toEqual([]);
    dependents = await startDependents(client, { clock: systemClock, logger: quietLogger });
    await waitFor('the child run of that parent run', () => (lines(childFile).includes(parent.runId) ? true : undefined), 20_000, 100);
    for (const job of ['nightly', 'report']) await client.delete().key(`/cron/jobs/${job}`);
  });
});
