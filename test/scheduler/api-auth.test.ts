import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl } from '../support/compat-etcdctl.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { jsonOf, runCli, startMasterProcess, type DaemonProcess } from './cli-harness.js';

// The master API on a store with auth enabled (issue 13, item 7): requests must carry a store
// user (HTTP Basic, checked by the store) or the master's --api-token; /metrics and /health stay
// open. Runs on real etcd and on the bundled store, both set up with etcdctl.

describe.skipIf(!hasStoreUnderTest())('API authentication when the store has auth enabled', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    const setup: string[][] = [
      ['user', 'add', 'root', '--new-user-password=rootpw'],
      ['user', 'add', 'scheduler', '--new-user-password=schedpw'],
      ['role', 'add', 'cron'],
      ['role', 'grant-permission', '--prefix', 'cron', 'readwrite', '/cron/'],
      ['user', 'grant-role', 'scheduler', 'cron'],
      ['auth', 'enable'],
    ];
    for (const args of setup) {
      const result = await etcdctl(store, args);
      expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    master = await startMasterProcess({
      endpoint: store.endpoint, id: 'auth-api', extraArgs: ['--user', 'scheduler:schedpw', '--api-token', 'tok-3141'],
    });
    env = { ETCRON_API: master.apiUrl, ETCRON_USER: '', ETCRON_PASSWORD: '', ETCRON_API_TOKEN: '' };
  }, 60_000);

  afterAll(async () => {
    await master?.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  it('refuses requests without credentials with 401 and a message saying what to pass', async () => {
    const response = await fetch(`${master.apiUrl}/v1/jobs`, { signal: AbortSignal.timeout(5_000) });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="etcron"/);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('ETCRON_UNAUTHORIZED');
    expect(body.error.message).toContain('authentication required');

    const cli = await runCli(['job', 'list'], env);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toBe(
      'etcron: authentication required: pass --user and --password (or ETCRON_USER and ETCRON_PASSWORD) with a store user, '
      + 'or a bearer token (--api-token, ETCRON_API_TOKEN)\n',
    );
    // A write without credentials changes nothing.
    const add = await runCli(['job', 'add', 'sneaky', '--schedule', '@hourly', '--command', 'true'], env);
    expect(add.code).toBe(2);
    expect(await etcdctl(store, ['--user', 'root:rootpw', 'get', '/cron/jobs/sneaky', '--print-value-only']))
      .toMatchObject({ code: 0, stdout: '' });
  });

  it('serves a store user given by flags or environment, and the bearer token', async () => {
    const add = await runCli(
      ['job', 'add', 'guarded', '--schedule', '@hourly', '--command', 'true', '--user', 'scheduler', '--password', 'schedpw'], env,
    );
    expect(add.code, add.stderr).toBe(0);
    const listed = await runCli(['job', 'list', '-o', 'json'], { ...env, ETCRON_USER: 'scheduler', ETCRON_PASSWORD: 'schedpw' });
    expect(listed.code, listed.stderr).toBe(0);
    expect(jsonOf<{ jobs: { name: string }[] }>(listed).jobs.map((j) => j.name)).toEqual(['guarded']);
    // Discovery and the status's second call to the leader carry the credentials too.
    const status = await runCli(['status', '-o', 'json', '--user', 'scheduler:schedpw'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonOf<{ masters: { id: string }[] }>(status).masters.map((m) => m.id)).toEqual(['auth-api']);
    const token = await runCli(['job', 'get', 'guarded'], { ...env, ETCRON_API_TOKEN: 'tok-3141' });
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toContain('guarded');
  });

  it('refuses a wrong password, an unknown user and a wrong token', async () => {
    const wrong = await runCli(['job', 'list', '--user', 'scheduler', '--password', 'nope'], env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toBe('etcron: authentication failed for user scheduler: wrong user or password\n');
    const unknown = await runCli(['job', 'list'], { ...env, ETCRON_USER: 'nobody:x' });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('authentication failed for user nobody');
    // The right password just before does not let a wrong one in through the cache.
    expect((await runCli(['job', 'list', '--user', 'scheduler:schedpw'], env)).code).toBe(0);
    expect((await runCli(['job', 'list', '--user', 'scheduler:schedpw2'], env)).code).toBe(2);
    const badToken = await runCli(['job', 'list'], { ...env, ETCRON_API_TOKEN: 'tok-0000' });
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('bearer token refused');
  });

  it('keeps /metrics and /health open', async () => {
    for (const path of ['/metrics', '/health']) {
      const response = await fetch(`${master.apiUrl}${path}`, { signal: AbortSignal.timeout(5_000) });
      expect(response.status, path).toBe(200);
    }
  });
});
