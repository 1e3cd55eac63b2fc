import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { freePort, waitFor } from '../support/ports.js';
import { clientFor, historyRecords, putJob, quietLogger } from '../support/scheduler-fixtures.js';
import { startWorker, type WorkerHandle } from '../../worker/index.js';
import type { RunRecord } from '../../shared/history/records.js';

interface Seen {
  readonly path: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  closedEarly: boolean;
}

/** HTTP jobs (issue 13 item 4): the worker makes the request; claim, fence and record as for a command. */
describe.skipIf(!hasStoreUnderTest())('worker HTTP executor', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let worker: WorkerHandle;
  let target: Server;
  let base = '';
  const seen: Seen[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    // The target: answers by path, and remembers every request it got with its headers and body.
    target = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const entry: Seen = { path: req.url ?? '', method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString(), closedEarly: false };
        seen.push(entry);
        res.on('close', () => { if (!res.writableFinished) entry.closedEarly = true; });
        if (entry.path.startsWith('/ok')) res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${String(req.headers['x-etcron-slot'])}\n`);
        else if (entry.path.startsWith('/accepted')) res.writeHead(202).end('queued');
        else if (entry.path.startsWith('/fail')) res.writeHead(500).end('boom');
        // /hang: never answers; the job's timeout must end the run and the connection.
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    worker = await startWorker({ id: 'h1', client: { endpoints: store.endpoint }, logger: quietLogger });
  });

  afterAll(async () => {
    await worker?.stop();
    target?.closeAllConnections();
    target?.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  const requestsTo = (prefix: string): Seen[] => seen.filter((s) => s.path.startsWith(prefix));

  async function until(job: string, what: string, check: (records: RunRecord[]) => boolean): Promise<RunRecord[]> {
    return waitFor(what, async () => {
      const records = await historyRecords(client, job);
      return check(records) ? records : undefined;
    }, 15_000, 100);
  }

  it('sends one request per slot carrying the run\'s identity and fence; records status and body', async () => {
    await putJob(client, {
      name: 'ping', schedule: '* * * * * *', http: { url: `${base}/ok?from=etcron`, headers: { 'X-Team': 'ops' } },
    });
    const records = await until('ping', 'three succeeded runs', (rs) => rs.filter((r) => r.state === 'succeeded').length >= 3);
    await client.delete().key('/cron/jobs/ping');
    const succeeded = records.filter((r) => r.state === 'succeeded');
    for (const record of succeeded) {
      const requests = requestsTo('/ok').filter((s) => s.headers['x-etcron-slot'] === record.slot);
      expect(requests, record.slot).toHaveLength(1);
      const headers = requests[0]!.headers;
      expect(headers).toMatchObject({
        'x-etcron-job': 'ping', 'x-etcron-run-id': record.runId, 'x-etcron-fence': String(record.fence),
        'x-etcron-worker': 'h1', 'x-etcron-attempt': '1', 'x-team': 'ops',
      });
      expect(requests[0]!.method).toBe('GET');
      expect(record.httpStatus).toBe(200);
      expect(record.exitCode).toBeUndefined();
      expect(record.outputTail).toBe(`HTTP/1.1 200 OK\nhello ${record.slot}\n`);
    }
    // Each run got its own fencing token.
    expect(new Set(succeeded.map((r) => r.fence)).size).toBe(succeeded.length);
  });

  it('a status outside expectStatus fails the run, and its retry is a new request with a new fence', async () => {
    await putJob(client, {
      name: 'post', schedule: '@every 2s',
      http: { method: 'POST', url: `${base}/accepted`, body: '{"a":1}', headers: { 'content-type': 'application/json' }, expectStatus: [202] },
    });
    await putJob(client, { name: 'broken', schedule: '@every 2s', retries: { count: 1, backoffInitialMs: 200 }, http: { url: `${base}/fail` } });
    const posted = await until('post', 'a succeeded POST', (rs) => rs.some((r) => r.state === 'succeeded'));
    expect(posted.find((r) => r.state === 'succeeded')?.httpStatus).toBe(202);
    const post = requestsTo('/accepted')[0]!;
    expect(post).toMatchObject({ method: 'POST', body: '{"a":1}' });
    expect(post.headers['content-type']).toBe('application/json');

    const broken = await until('broken', 'attempt 2 failed', (rs) => rs.some((r) => r.attempt === 2 && r.state === 'failed'));
    const final = broken.find((r) => r.attempt === 2)!;
    expect(final.reason).toBe('HTTP status 500 (expected 2xx)');
    expect(final.httpStatus).toBe(500);
    expect(final.outputTail).toBe('HTTP/1.1 500 Internal Server Error\nboom');
    const attempts = requestsTo('/fail').filter((s) => s.headers['x-etcron-slot'] === final.slot);
    expect(attempts.map((s) => s.headers['x-etcron-attempt'])).toEqual(['1', '2']);
    expect(Number(attempts[1]!.headers['x-etcron-fence'])).toBeGreaterThan(Number(attempts[0]!.headers['x-etcron-fence']));
    await client.delete().key('/cron/jobs/post');
    await client.delete().key('/cron/jobs/broken');
  });

  it('a request that outlives timeoutMs is aborted (the target sees its connection close) and recorded timeout', async () => {
    await putJob(client, { name: 'hang', schedule: '@every 2s', timeoutMs: 300, http: { url: `${base}/hang` } });
    const records = await until('hang', 'a timed-out run', (rs) => rs.some((r) => r.state === 'timeout'));
    await client.delete().key('/cron/jobs/hang');
    const run = records.find((r) => r.state === 'timeout')!;
    expect(run.reason).toBe('timed out; request aborted');
    expect(run.endedAtMs! - run.startedAtMs!).toBeLessThan(2_000);
    await waitFor('the target to see the connection closed', () => (requestsTo('/hang').some((s) => s.closedEarly) ? true : undefined), 5_000);
  });

  it('a target that refuses connections fails the run with the reason', async () => {
    const closedPort = await freePort();
    await putJob(client, { name: 'nobody', schedule: '@every 2s', http: { url: `http://127.0.0.1:${closedPort}/` } });
    const records = await until('nobody', 'a failed run', (rs) => rs.some((r) => r.state === 'failed'));
    await client.delete().key('/cron/jobs/nobody');
    expect(records.find((r) => r.state === 'failed')?.reason).toBe('request failed: ECONNREFUSED');
  });
});
