import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { sampleOf, scrape } from '../support/prometheus-text.js';
import { ApiClient } from '../../cli/scheduler-api-client.js';
import { apiGet, jsonOf, runCli, startMasterProcess, type DaemonProcess } from './cli-harness.js';

// Master discovery through the store (issue 13, item 6): each master registers its API URL under
// /cron/masters/<id> on its own lease; GET /v1/masters lists the live ones; the CLI learns them
// from one seed, spreads its reads over them and fails over when one dies.

interface MasterRow { id: string; apiUrl: string; isLeader: boolean; startedAt: string; leaderSince: string | null }

const LEASE_TTL_SECONDS = 2;

describe.skipIf(!hasStoreUnderTest())('master discovery through the store', () => {
  let store: StoreProcess;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
  });
  afterAll(async () => {
    for (const daemon of daemons) await daemon.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  const startMasters = async (ids: readonly string[]): Promise<DaemonProcess[]> => {
    const started = await Promise.all(ids.map((id) =>
      startMasterProcess({ endpoint: store.endpoint, id, leaseTtlSeconds: LEASE_TTL_SECONDS })));
    daemons.push(...started);
    return started;
  };
  const mastersOn = async (master: DaemonProcess): Promise<MasterRow[]> =>
    (await apiGet<{ masters: MasterRow[] }>(`${master.apiUrl}/v1/masters`)).masters;

  it('lists every live master on each, leader marked; a clean stop deregisters at once, a crash within the lease TTL', async () => {
    const [m1, m2, m3] = await startMasters(['reg-1', 'reg-2', 'reg-3']) as [DaemonProcess, DaemonProcess, DaemonProcess];
    // Registration is awaited before a master says it serves, but the election may still be running.
    const listed = await waitFor('a leader in the list', async () => {
      const rows = await mastersOn(m1);
      return rows.some((r) => r.isLeader) ? rows : undefined;
    });
    expect(listed.map((r) => [r.id, r.apiUrl])).toEqual([
      ['reg-1', m1.apiUrl], ['reg-2', m2.apiUrl], ['reg-3', m3.apiUrl],
    ]);
    const leaders = listed.filter((r) => r.isLeader);
    expect(leaders).toHaveLength(1);
    expect(leaders[0]?.leaderSince).not.toBeNull();
    const status = await apiGet<{ leader: { id: string } }>(`${m2.apiUrl}/v1/status`);
    expect(leaders[0]?.id).toBe(status.leader.id);
    expect((await mastersOn(m2)).map((r) => [r.id, r.isLeader])).toEqual(listed.map((r) => [r.id, r.isLeader]));

    // SIGTERM: the master revokes its lease before it exits, so one read right after shows it gone.
    await m3.kill('SIGTERM');
    expect((await mastersOn(m1)).map((r) => r.id)).toEqual(['reg-1', 'reg-2']);

    // SIGKILL: nothing revokes; the store expires the lease, and the key with it, after the TTL.
    const killedAt = Date.now();
    await m2.kill('SIGKILL');
    await waitFor('the killed master to leave the list', async () =>
      (await mastersOn(m1)).some((r) => r.id === 'reg-2') ? undefined : true, 15_000, 100);
    const goneAfterMs = Date.now() - killedAt;
    // TTL after its last keep-alive, plus the store's expiry sweep and one poll.
    expect(goneAfterMs).toBeLessThan(LEASE_TTL_SECONDS * 1000 + 2_500);
    const rest = await waitFor('the survivor to lead', async () => {
      const rows = await mastersOn(m1);
      return rows[0]?.isLeader === true ? rows : undefined;
    });
    expect(rest.map((r) => r.id)).toEqual(['reg-1']);
    await m1.kill('SIGTERM');
  }, 60_000);

  it('the CLI learns every master from one seed, spreads reads over them and fails over when one dies', async () => {
    const [m1, m2] = await startMasters(['cli-1', 'cli-2']) as [DaemonProcess, DaemonProcess];
    const status = await runCli(['status', '-o', 'json'], { ETCRON_API: m1.apiUrl });
    expect(status.code, status.stderr).toBe(0);
    const masters = jsonOf<{ masters: MasterRow[] }>(status).masters;
    expect(masters.map((m) => [m.id, m.apiUrl])).toEqual([['cli-1', m1.apiUrl], ['cli-2', m2.apiUrl]]);
    const table = await runCli(['status'], { ETCRON_API: m1.apiUrl });
    expect(table.stdout).toMatch(/cli-2\s+http:\/\/127\.0\.0\.1:\d+\s+(leader|standby)\s+/);

    // One client (as one CLI invocation) seeded with m1 only: its reads reach both masters. Each
    // master counts the requests it received per route in etcron_api_requests_total.
    const series = 'etcron_api_requests_total{method="GET",route="/v1/jobs"}';
    const jobReads = async (m: DaemonProcess): Promise<number> => sampleOf((await scrape(`${m.apiUrl}/metrics`)).scrape, series);
    const before = [await jobReads(m1), await jobReads(m2)];
    const client = new ApiClient({ seeds: [m1.apiUrl] });
    for (let i = 0; i < 6; i++) await client.get('/v1/jobs');
    const served = [(await jobReads(m1)) - (before[0] ?? 0), (await jobReads(m2)) - (before[1] ?? 0)];
    expect(served).toEqual([3, 3]);

    // m1 dies mid-invocation: reads and writes go on through m2, which the client discovered.
    await m1.kill('SIGKILL');
    for (let i = 0; i < 3; i++) expect(await client.get('/v1/jobs')).toMatchObject({ jobs: [] });
    await client.post('/v1/jobs', { name: 'after-failover', schedule: '@hourly', command: 'true' });
    expect(await client.get('/v1/jobs/after-failover')).toMatchObject({ job: { name: 'after-failover' } });

    // A new invocation knowing only the dead m1 cannot discover anything; with m2 among its seeds it works.
    const lost = await runCli(['job', 'list'], { ETCRON_API: m1.apiUrl });
    expect(lost.code).toBe(1);
    expect(lost.stderr).toContain('cannot reach the master API');
    const seeded = await runCli(['job', 'list'], { ETCRON_API: `${m1.apiUrl},${m2.apiUrl}` });
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stdout).toContain('after-failover');
    await m2.kill('SIGTERM');
  }, 60_000);
});
