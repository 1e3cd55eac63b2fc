import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { freePort } from '../support/ports.js';
import { retryKey, runKey, runsPrefix } from '../../shared/keys.js';
import { jsonOf, runCli, startMasterProcess, type DaemonProcess } from './cli-harness.js';

// CLI round trips through real `etcron master` processes on a real store (issue #5, "CLI" and
// "Invalid cron, unknown time zone, bad durations, unknown fields: a clear error naming the
// field, nothing written").

interface JobView {
  name: string;
  createRevision: number;
  modRevision: number;
  version: number;
  spec: { schedule: string; timezone: string; paused: boolean; tags: string[]; command?: string; timeoutMs?: number };
}

describe.skipIf(!hasStoreUnderTest())('etcron job commands against a master', () => {
  let store: StoreProcess;
  let masterA: DaemonProcess;
  let masterB: DaemonProcess;
  let client: Etcd3;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = new Etcd3({ hosts: store.clientUrl });
    [masterA, masterB] = await Promise.all([
      startMasterProcess({ endpoint: store.endpoint, id: 'master-a' }),
      startMasterProcess({ endpoint: store.endpoint, id: 'master-b' }),
    ]);
    env = { ETCRON_API: masterA.apiUrl };
    dir = mkdtempSync(join(tmpdir(), 'etcron-cli-'));
  });

  afterAll(async () => {
    await masterA?.kill('SIGKILL');
    await masterB?.kill('SIGKILL');
    client?.close();
    await store?.kill();
    store?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function storeRevision(): Promise<number> {
    return Number((await client.get('/cron/jobs/').exec()).header.revision);
  }

  it('adds, lists, gets, pauses, resumes and removes a job', { timeout: 120_000 }, async () => {
    const add = await runCli([
      'job', 'add', 'backup', '--schedule', '0 */5 * * * *', '--command', 'echo backup', '--timezone', 'europe/paris',
      '--timeout', '30s', '--tags', 'db,eu', '-o', 'json',
    ], env);
    expect(add.code, add.stderr).toBe(0);
    const created = jsonOf<{ job: JobView }>(add).job;
    // The stored value is what the CLI sent, normalized: canonical zone, duration in ms.
    const stored = JSON.parse((await client.get('/cron/jobs/backup').string()) ?? '{}') as JobView['spec'];
    expect(stored.timezone).toBe('Europe/Paris');
    expect(stored.timeoutMs).toBe(30_000);
    expect(stored.tags).toEqual(['db', 'eu']);

    const list = jsonOf<{ jobs: JobView[] }>(await runCli(['job', 'list', '-o', 'json'], env));
    expect(list.jobs.map((j) => j.name)).toEqual(['backup']);
    const table = await runCli(['job', 'list'], env);
    expect(table.stdout).toMatch(/^NAME\s+SCHEDULE/);
    expect(table.stdout).toMatch(/backup\s+0 \*\/5 \* \* \* \*\s+Europe\/Paris\s+false/);

    const pause = await runCli(['job', 'pause', 'backup'], env);
    expect(pause.code, pause.stderr).toBe(0);
    const paused = jsonOf<{ job: JobView }>(await runCli(['job', 'get', 'backup', '-o', 'json'], env)).job;
    expect(paused.spec.paused).toBe(true);
    expect(paused.modRevision).toBeGreaterThan(created.modRevision);
    // The job as it stood before the pause is still readable at the old revision.
    const before = jsonOf<{ job: JobView }>(
      await runCli(['job', 'get', 'backup', '--rev', String(created.modRevision), '-o', 'json'], env),
    ).job;
    expect(before.spec.paused).toBe(false);

    // A standby master serves the same API: resume through master B.
    const resume = await runCli(['job', 'resume', 'backup', '--api', masterB.apiUrl], env);
    expect(resume.code, resume.stderr).toBe(0);
    expect(JSON.parse((await client.get('/cron/jobs/backup').string()) ?? '{}')).toMatchObject({ paused: false });

    const rm = await runCli(['job', 'rm', 'backup'], env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(await client.get('/cron/jobs/backup').exists()).toBe(false);
    const again = await runCli(['job', 'rm', 'backup'], env);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('not found');
  });

  it.each([
    ['bad cron', ['--schedule', '61 * * * * *', '--command', 'true'], 'schedule'],
    ['zero step', ['--schedule', '*/0 * * * * *', '--command', 'true'], 'schedule'],
    ['unknown time zone', ['--schedule', '* * * * *', '--command', 'true', '--timezone', 'Mars/Phobos'], 'timezone'],
    ['path as time zone', ['--schedule', '* * * * *', '--command', 'true', '--timezone', '../../etc/passwd'], 'timezone'],
    ['duration without unit', ['--schedule', '* * * * *', '--command', 'true', '--timeout', '10'], 'timeoutMs'],
    ['negative retries', ['--schedule', '* * * * *', '--command', 'true', '--retries', '-1'], 'retries.count'],
    ['unknown overlap', ['--schedule', '* * * * *', '--command', 'true', '--overlap', 'Sometimes'], 'overlap'],
  ])('rejects %s naming the field and writes nothing', async (_what, flags, field) => {
    const revision = await storeRevision();
    const result = await runCli(['job', 'add', 'invalid-job', ...flags], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${field} (`);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await client.get('/cron/jobs/invalid-job').exists()).toBe(false);
    expect(await storeRevision()).toBe(revision);
  });

  it('rejects unknown fields in a spec file and through the API, writing nothing', async () => {
    const revision = await storeRevision();
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'name: good\nschedule: "* * * * *"\ncommand: "true"\n---\nname: typo\nschedul: "* * * * *"\ncommand: "true"\n');
    const apply = await runCli(['job', 'apply', '-f', file], env);
    expect(apply.code).toBe(2);
    expect(apply.stderr).toContain('job typo: schedul: unknown field');
    // One bad document means none is applied, not even the good one.
    expect(await client.get('/cron/jobs/good').exists()).toBe(false);

    // The master validates too, for clients other than the CLI.
    const response = await fetch(`${masterA.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'typo', schedul: '* * * * *', command: 'true' }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; fields: { field: string }[] } };
    expect(body.error.code).toBe('ETCRON_INVALID_SPEC');
    expect(body.error.fields.map((f) => f.field)).toContain('schedul');
    expect(await storeRevision()).toBe(revision);
  });

  it('refuses a 1 MiB command and an oversized body before the store sees them', async () => {
    const revision = await storeRevision();
    const post = (command: string): Promise<Response> => fetch(`${masterA.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'huge', schedule: '@hourly', command }),
    });
    const mib = await post('x'.repeat(1 << 20));
    expect(mib.status).toBe(400);
    expect(((await mib.json()) as { error: { fields: { field: string }[] } }).error.fields[0]?.field).toBe('command');
    const body = await post('x'.repeat(3 << 20));
    expect(body.status).toBe(413);
    expect(await client.get('/cron/jobs/huge').exists()).toBe(false);
    expect(await storeRevision()).toBe(revision);
  });

  it('applies YAML: creates, then reports unchanged, then updates', { timeout: 120_000 }, async () => {
    const file = join(dir, 'jobs.yaml');
    const spec = (command: string): string =>
      `jobs:\n  - name: report\n    schedule: "@every 10s"\n    command: "${command}"\n  - name: cleanup\n    schedule: "@daily"\n    argv: ["rm", "-rf", "/tmp/x"]\n`;
    writeFileSync(file, spec('echo one'));
    const first = await runCli(['job', 'apply', '-f', file], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/job report created[\s\S]*job cleanup created/);
    const second = await runCli(['job', 'apply', '-f', file], env);
    expect(second.stdout).toMatch(/job report unchanged[\s\S]*job cleanup unchanged/);
    writeFileSync(file, spec('echo two'));
    const third = await runCli(['job', 'apply', '-f', file], env);
    expect(third.stdout).toMatch(/job report updated[\s\S]*job cleanup unchanged/);
    expect(JSON.parse((await client.get('/cron/jobs/report').string()) ?? '{}')).toMatchObject({ command: 'echo two' });
    const stdinApply = await runCli(['job', 'apply', '-f', '-'], env, 20_000, '{"name":"json-job","schedule":"@hourly","command":"true"}');
    expect(stdinApply.code, stdinApply.stderr).toBe(0);
    expect(await client.get('/cron/jobs/json-job').exists()).toBe(true);
  });

  it('applies 2,500 jobs in a few batched txns; a re-apply writes only what changed', { timeout: 120_000 }, async () => {
    const file = join(dir, 'many.yaml');
    const specs = (changed: number): string => Array.from({ length: 2_500 }, (_, i) =>
      `- name: many-${i}\n  schedule: "@every ${10 + (i % 50)}s"\n  command: "echo ${i < changed ? 'v2' : 'v1'} ${i}"\n`,
    ).join('');
    writeFileSync(file, specs(0));
    const before = await storeRevision();
    const first = await runCli(['job', 'apply', '-f', file], env, 60_000);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.match(/^job many-\d+ created \(revision \d+\)$/gm)).toHaveLength(2_500);
    const stored = await client.getAll().prefix('/cron/jobs/many-').exec();
    expect(stored.kvs).toHaveLength(2_500);
    // One revision per txn of up to 100 jobs, not one per job (the housekeeper writes meanwhile).
    expect(new Set(stored.kvs.map((kv) => kv.mod_revision)).size).toBeLessThanOrEqual(25);
    expect(stored.kvs.every((kv) => Number(kv.mod_revision) > before)).toBe(true);
    writeFileSync(file, specs(120));
    const second = await runCli(['job', 'apply', '-f', file, '-o', 'json'], env, 60_000);
    expect(second.code, second.stderr).toBe(0);
    const results = jsonOf<{ name: string; created: boolean; unchanged: boolean; job: { version: number } }[]>(second);
    expect(results.filter((r) => !r.unchanged).map((r) => r.name))
      .toEqual(Array.from({ length: 120 }, (_, i) => `many-${i}`));
    expect(results.every((r) => !r.created)).toBe(true);
    expect(results.find((r) => r.name === 'many-7')?.job.version).toBe(2);
    expect(JSON.parse((await client.get('/cron/jobs/many-119').string()) ?? '{}')).toMatchObject({ command: 'echo v2 119' });
    expect(JSON.parse((await client.get('/cron/jobs/many-120').string()) ?? '{}')).toMatchObject({ command: 'echo v1 120' });
    // `job list` reads the 2,500 definitions in pages, all at one revision: every job once, in order.
    const listed = await runCli(['job', 'list', '-o', 'json'], env, 60_000);
    expect(listed.code, listed.stderr).toBe(0);
    const names = jsonOf<{ jobs: { name: string }[] }>(listed).jobs.map((j) => j.name).filter((n) => n.startsWith('many-'));
    expect(names).toEqual(Array.from({ length: 2_500 }, (_, i) => `many-${i}`).sort());
    await client.delete().prefix('/cron/jobs/many-').exec();
  });

  it('refuses a batched apply with a bad or repeated spec and writes nothing', async () => {
    const revision = await storeRevision();
    const post = (jobs: unknown): Promise<Response> => fetch(`${masterA.apiUrl}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jobs }),
    });
    const good = { name: 'batch-good', schedule: '@hourly', command: 'true' };
    const bad = await post([good, { name: 'batch-bad', schedule: 'every tuesday', command: 'true' }]);
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { code: string; fields: { field: string }[] } };
    expect(badBody.error.code).toBe('ETCRON_INVALID_SPEC');
    expect(badBody.error.fields.map((f) => f.field)).toContain('jobs[1].schedule');
    const twice = await post([good, good]);
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: { message: string } }).error.message).toContain('appears twice');
    expect((await post([])).status).toBe(400);
    expect(await storeRevision()).toBe(revision);
  });

  it('rm removes the job, its pending retries and its final history; live runs keep their record', async () => {
    const add = await runCli(['job', 'add', 'gone', '--schedule', '@hourly', '--command', 'true'], env);
    expect(add.code, add.stderr).toBe(0);
    const record = (slotMs: number, state: string): string => JSON.stringify({
      job: 'gone', slot: new Date(slotMs).toISOString(), runId: `gone@${new Date(slotMs).toISOString()}#1`,
      state, attempt: 1, worker: 'w1', leaseId: '1', endedAtMs: slotMs + 1_000,
    });
    const hour = 3_600_000;
    const base = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 120; i++) await client.put(runKey('gone', base + i * hour)).value(record(base + i * hour, i % 3 === 0 ? 'failed' : 'succeeded'));
    await client.put(runKey('gone', base + 200 * hour)).value(record(base + 200 * hour, 'running'));
    await client.put(retryKey('gone', base)).value('{"job":"gone","attempt":2}');
    const before = await storeRevision();
    const rm = await runCli(['job', 'rm', 'gone', '-o', 'json'], env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(jsonOf<{ purgedRuns: number }>(rm).purgedRuns).toBe(120);
    expect(await client.get(retryKey('gone', base)).exists()).toBe(false);
    const left = await client.getAll().prefix(runsPrefix('gone')).keys();
    expect(left).toEqual([runKey('gone', base + 200 * hour)]);
    // History as it stood before the rm is still there to read.
    const past = await runCli(['job', 'history', 'gone', '--rev', String(before), '--limit', '200', '-o', 'json'], env);
    expect(past.code, past.stderr).toBe(0);
    expect(JSON.stringify(jsonOf<unknown>(past)).match(/"state"/g)?.length).toBe(121);
    await client.delete().prefix(runsPrefix('gone')).exec();
  });

  it('of concurrent creates of one job through two masters, exactly one wins', { timeout: 120_000 }, async () => {
    const attempts = 6;
    const results = await Promise.all(Array.from({ length: attempts }, (_, i) => runCli([
      'job', 'add', 'race', '--schedule', '@hourly', '--command', `echo ${i}`,
      '--api', i % 2 === 0 ? masterA.apiUrl : masterB.apiUrl,
    ], env)));
    const winners = results.filter((r) => r.code === 0);
    expect(winners).toHaveLength(1);
    for (const loser of results.filter((r) => r.code !== 0)) {
      expect(loser.code).toBe(2);
      expect(loser.stderr).toContain('already exists');
    }
    const kv = (await client.get('/cron/jobs/race').exec()).kvs[0];
    expect(kv?.version).toBe('1'); // written once, never overwritten
    const winner = Number(/echo (\d)/.exec(kv?.value.toString() ?? '')?.[1]);
    expect(winners[0]).toBe(results[winner]);
  });

  it('fails fast with a clear message when no master answers', async () => {
    const port = await freePort(); // nothing listens here
    const result = await runCli(['job', 'list', '--api', `http://127.0.0.1:${port}`], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot reach the master API .*ECONNREFUSED/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.elapsedMs).toBeLessThan(5_000);
    // With a dead master listed first, the CLI moves on to a live one.
    const fallback = await runCli(['job', 'list', '-o', 'json', '--api', `http://127.0.0.1:${port},${masterB.apiUrl}`], {});
    expect(fallback.code, fallback.stderr).toBe(0);
  });

  it('a master whose store is unreachable exits with a clear error instead of hanging', async () => {
    // docs/cli.md: a master that cannot reach the store within 8 s of starting exits with an error.
    const probeTimeoutMs = 8_000;
    // A liveness bound, not a speed target: the probe's timeout plus a generous margin for starting
    // node and loading the CLI on a loaded machine (4.4 s seen at load average 15 on 2 cores).
    const exitBoundMs = probeTimeoutMs + 10_000;
    const deadPort = await freePort();
    const apiPort = await freePort();
    const result = await runCli([
      'master', '--endpoints', `127.0.0.1:${deadPort}`, '--api', `127.0.0.1:${apiPort}`, '--log-level', 'silent',
    ], {}, exitBoundMs + 10_000);
    expect(result.code, `killed after ${result.elapsedMs} ms: the master hung`).toBe(1);
    expect(result.stderr).toContain(`store unreachable after ${probeTimeoutMs} ms`);
    expect(result.stderr).toMatch(/cannot start master: store unreachable .*ECONNREFUSED/);
    expect(result.elapsedMs).toBeLessThan(exitBoundMs);
  });
});
