import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasEtcd, type StoreProcess } from '../support/etcd-process.js';
import { startStoreUnderTest } from '../support/store-under-test.js';
import { freePort, waitFor } from '../support/ports.js';
import { sampleOf, scrape, type Scrape } from '../support/prometheus-text.js';
import { startMasterProcess, startWorkerProcess, type DaemonProcess } from './cli-harness.js';

// Prometheus /metrics on a master (API port) and a worker (--metrics-addr), scraped while real
// jobs run (issue #13): counters must move with the runs they count.

describe.skipIf(!hasEtcd())('scheduler metrics', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let worker: DaemonProcess;
  let workerMetricsUrl: string;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    const metricsPort = await freePort();
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    [master, worker] = await Promise.all([
      startMasterProcess({ endpoint: store.endpoint, id: 'm-metrics' }),
      startWorkerProcess({
        endpoint: store.endpoint, id: 'w-metrics', leaseTtlSeconds: 3,
        extraArgs: ['--metrics-addr', `127.0.0.1:${metricsPort}`],
      }),
    ]);
  });
  afterAll(async () => {
    await worker?.kill('SIGKILL');
    await master?.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  const addJob = async (spec: Record<string, unknown>): Promise<void> => {
    const response = await fetch(`${master.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.status, await response.text()).toBe(201);
  };
  const workerScrape = async (): Promise<Scrape> => (await scrape(workerMetricsUrl)).scrape;
  const masterScrape = async (): Promise<Scrape> =>
    (await scrape(`${master.apiUrl}/metrics`)).scrape;

  it('counts starts, final states, retries, claims, renewals, store latency on the worker', {
    timeout: 90_000,
  }, async () => {
    const first = await scrape(workerMetricsUrl);
    expect(first.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(first.text).toContain('# TYPE etcron_run_start_lateness_seconds histogram');
    const before = first.scrape;

    await addJob({ name: 'metrics-ok', schedule: '* * * * * *', command: 'echo ok' });
    await addJob({
      name: 'metrics-fail', schedule: '*/2 * * * * *', command: 'exit 3',
      retries: { count: 1, backoffInitialMs: 100 },
    });
    // Bounded wait: at least 3 successes, and a failed first attempt followed by its retry.
    const after = await waitFor('runs counted on the worker', async () => {
      const now = await workerScrape();
      const succeeded = sampleOf(now, 'etcron_runs_finished_total{state="succeeded"}');
      const retries = sampleOf(now, 'etcron_retries_total');
      return succeeded >= 3 && retries >= 1 ? now : undefined;
    }, 40_000);

    const finishedOf = (state: string): number =>
      sampleOf(after, `etcron_runs_finished_total{state="${state}"}`);
    // The first attempt and its retry both exit 3.
    expect(finishedOf('failed')).toBeGreaterThanOrEqual(2);
    const started = sampleOf(after, 'etcron_runs_started_total')
      - sampleOf(before, 'etcron_runs_started_total');
    // Every start was claimed and won, and every finished run had started.
    expect(started).toBeGreaterThanOrEqual(finishedOf('succeeded') + finishedOf('failed'));
    expect(sampleOf(after, 'etcron_claims_total{result="won"}')).toBeGreaterThanOrEqual(started);
    // Lateness is observed once per first attempt, with a bucket for every start.
    const latenessCount = sampleOf(after, 'etcron_run_start_lateness_seconds_count');
    expect(latenessCount).toBeGreaterThan(0);
    const latenessInf = 'etcron_run_start_lateness_seconds_bucket{le="+Inf"}';
    expect(sampleOf(after, latenessInf)).toBe(latenessCount);
    expect(latenessCount).toBeLessThan(sampleOf(after, 'etcron_runs_started_total'));
    // The lease was renewed (3 s TTL: a keep-alive every second), and the claims' Txns were timed.
    expect(sampleOf(after, 'etcron_lease_renewals_total{result="ok"}')).toBeGreaterThan(0);
    const txns = 'etcron_store_request_duration_seconds_count{method="Txn"}';
    expect(sampleOf(after, txns)).toBeGreaterThan(sampleOf(before, txns));
  });

  it('counts housekeeping passes and paused (skipped) slots on the leader', {
    timeout: 60_000,
  }, async () => {
    await waitFor('the master to lead', async () =>
      (sampleOf(await masterScrape(), 'etcron_master_leader') === 1 ? true : undefined), 15_000);
    const before = await masterScrape();
    await addJob({
      name: 'metrics-paused', schedule: '* * * * * *', command: 'true', paused: true, catchUp: { lateStartMs: 0 },
    });
    const after = await waitFor('paused slots counted as skipped', async () => {
      const now = await masterScrape();
      return sampleOf(now, 'etcron_runs_skipped_total{reason="paused"}') >= 2 ? now : undefined;
    }, 30_000);
    expect(sampleOf(before, 'etcron_runs_skipped_total{reason="paused"}')).toBe(0);
    const okPasses = 'etcron_housekeeping_passes_total{result="ok"}';
    const passes = sampleOf(after, okPasses);
    expect(passes).toBeGreaterThan(sampleOf(before, okPasses));
    const timed = sampleOf(after, 'etcron_housekeeping_pass_duration_seconds_count');
    expect(timed).toBeGreaterThanOrEqual(passes);
    const lastOk = sampleOf(after, 'etcron_housekeeping_last_success_timestamp_seconds');
    expect(lastOk).toBeGreaterThan(Date.now() / 1000 - 30);
    // A pure master runs no job: its worker-side counters stay at zero.
    expect(sampleOf(after, 'etcron_runs_started_total')).toBe(0);
  });

  it('answers 404 off /metrics on the worker listener', async () => {
    const url = workerMetricsUrl.replace('/metrics', '/');
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    expect(response.status).toBe(404);
  });
});
