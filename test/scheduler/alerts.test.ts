import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import { startHousekeeping, type HousekeepingHandle } from '../../master/housekeeping/index.js';
import { startAlerter, type AlerterHandle } from '../../master/alerts/alerter.js';
import { systemClock } from '../../shared/clock.js';
import { alertsPrefix, prefixEnd } from '../../shared/keys.js';
import { decodeAlertRecord, type AlertRecord } from '../../shared/history/alerts.js';

interface Received { readonly path: string; readonly body: Record<string, unknown> }

/** Issue 13 item 3: alerts on a job's runs, to a webhook and a command, retried and recorded. */
describe.skipIf(!hasStoreUnderTest())('alerts', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let worker: WorkerHandle;
  let housekeeping: HousekeepingHandle;
  let alerter: AlerterHandle | undefined;
  let target: Server;
  let base = '';
  const received: Received[] = [];
  /** Answers per path: a list of statuses to give in turn (then 200). */
  const scripted = new Map<string, number[]>();
  const dir = tempDir('etcron-alerts-');

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    target = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '';
        received.push({ path, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> });
        const status = scripted.get(path)?.shift() ?? 200;
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    worker = await startWorker({ id: 'a1', client: { endpoints: store.endpoint }, logger: quietLogger });
    housekeeping = startHousekeeping(client, { logger: quietLogger, intervalMs: 200 });
    alerter = await startAlerter(client, { clock: systemClock, logger: quietLogger });
  });

  afterAll(async () => {
    await alerter?.stop();
    await housekeeping?.stop();
    await worker?.stop();
    target?.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
    dir.remove();
  });

  async function alertsOf(job: string): Promise<AlertRecord[]> {
    const prefix = alertsPrefix(job);
    const response = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
    return response.kvs.flatMap((kv) => { const r = decodeAlertRecord(kv.value.toString()); return r === undefined ? [] : [r]; });
  }

  it('sends a failed run to the webhook and the command, and records both deliveries', async () => {
    const file = join(dir.path, 'command-alert');
    await putJob(client, {
      name: 'breaks', schedule: '@every 2s', command: 'echo boom; exit 3',
      alerts: { webhook: { url: `${base}/breaks` }, command: `echo "$ETCRON_ALERT_JOB $ETCRON_ALERT_STATE $ETCRON_ALERT_ATTEMPT" >> ${file}; cat > ${file}.json` },
    });
    const [alert] = await waitFor('a delivered alert', async () => {
      const alerts = await alertsOf('breaks');
      return alerts.some((a) => a.channels.webhook?.status === 'delivered' && a.channels.command?.status === 'delivered') ? alerts : undefined;
    }, 20_000, 100);
    await client.delete().key('/cron/jobs/breaks');
    expect(alert).toMatchObject({ job: 'breaks', state: 'failed', attempt: 1 });
    expect(alert?.channels.webhook?.attempts.map((a) => a.detail)).toEqual(['HTTP 200']);
    const posted = received.find((r) => r.path === '/breaks' && r.body['slot'] === alert?.slot);
    expect(posted?.body).toMatchObject({ job: 'breaks', state: 'failed', exitCode: 3, runId: alert?.runId });
    expect(String(posted?.body['outputTail'])).toContain('boom');
    expect(readFileSync(file, 'utf8').split('\n')).toContain('breaks failed 1');
    expect(JSON.parse(readFileSync(`${file}.json`, 'utf8'))).toMatchObject({ job: 'breaks', state: 'failed' });
  });

  it('retries a webhook that fails, recording every try, and alerts only on the last attempt of a retried run', async () => {
    scripted.set('/flaky', [500, 503]);
    await putJob(client, {
      name: 'flaky', schedule: '@every 2s', command: 'exit 1', retries: { count: 1, backoffInitialMs: 100 },
      alerts: { webhook: { url: `${base}/flaky` } },
    });
    // The first alert meets the two failures (later slots' alerts may be delivered first).
    const alerts = await waitFor('a delivery after two failures', async () => {
      const found = (await alertsOf('flaky')).sort((a, b) => a.slot.localeCompare(b.slot));
      return found[0]?.channels.webhook?.status === 'delivered' ? found : undefined;
    }, 30_000, 200);
    await client.delete().key('/cron/jobs/flaky');
    const delivered = alerts[0];
    expect(delivered?.channels.webhook?.attempts.map((a) => a.detail)).toEqual(['HTTP 500', 'HTTP 503', 'HTTP 200']);
    // Attempt 1 failed too, but a retry followed: only the final attempt alerts.
    expect(alerts.map((a) => `${a.slot} #${a.attempt} ${a.state}`).filter((text) => !text.includes('#2 '))).toEqual([]);
    const records = await historyRecords(client, 'flaky');
    // (The run record of the slot now holds attempt 2, with attempt 1's failure in its past.)
    expect(records.some((r) => r.attempt === 2 && r.previousAttempts?.[0]?.state === 'failed')).toBe(true);
  });

  it('alerts on a missed slot, and not on runs in states the job did not ask for', async () => {
    await putJob(client, { name: 'fine', schedule: '* * * * * *', command: 'true', alerts: { webhook: { url: `${base}/fine` } } });
    await putJob(client, {
      name: 'nowhere', schedule: '* * * * * *', command: 'true', tags: ['absent'], catchUp: { lateStartMs: 0 }, alerts: { on: ['missed'], webhook: { url: `${base}/nowhere` } },
    });
    await waitFor('a missed alert', () => (received.some((r) => r.path === '/nowhere' && r.body['state'] === 'missed') ? true : undefined), 20_000, 100);
    const fineRuns = await historyRecords(client, 'fine');
    expect(fineRuns.some((r) => r.state === 'succeeded')).toBe(true);
    expect(await alertsOf('fine')).toEqual([]);
    await client.delete().key('/cron/jobs/fine');
    await client.delete().key('/cron/jobs/nowhere');
  });

  it('a new leader raises the alerts of runs that ended while no alerter ran', async () => {
    await alerter?.stop();
    alerter = undefined;
    const file = join(dir.path, 'gap');
    await putJob(client, { name: 'gap', schedule: '@every 2s', command: 'exit 7', alerts: { command: `echo "$ETCRON_ALERT_SLOT" >> ${file}` } });
    const failed = await waitFor('a failed run with no alerter', async () => {
      const records = await historyRecords(client, 'gap');
      return records.find((r) => r.state === 'failed');
    }, 20_000, 100);
    expect(existsSync(file)).toBe(false);
    alerter = await startAlerter(client, { clock: systemClock, logger: quietLogger });
    await waitFor('the alert raised by the new alerter', () => (existsSync(file) && readFileSync(file, 'utf8').includes(failed.slot) ? true : undefined), 20_000, 100);
    await client.delete().key('/cron/jobs/gap');
  });
});
