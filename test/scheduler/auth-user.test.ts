import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl } from '../support/compat-etcdctl.js';
import { startEtcronStore, type StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';
import {
  runCli,
  startMasterProcess,
  startWorkerProcess,
  type DaemonProcess,
} from './cli-harness.js';

// The scheduler on an etcron store with auth enabled (issue #7): master and worker run as a user
// whose only permission is readwrite on the /cron/ prefix (elections, locks, leases and history
// all live there) and a job runs; a user without /cron/, or no user at all, is refused at start
// with a message that names what is missing.

describe('scheduler as a /cron/-only user on a store with auth enabled', () => {
  let store: StoreProcess;
  const daemons: DaemonProcess[] = [];
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'etcron-auth-user-'));
    store = await startEtcronStore();
    const setup: string[][] = [
      ['user', 'add', 'root', '--new-user-password=rootpw'],
      ['user', 'add', 'scheduler', '--new-user-password=schedpw'],
      ['user', 'add', 'outsider', '--new-user-password=outpw'],
      ['role', 'add', 'cron'],
      ['role', 'grant-permission', '--prefix', 'cron', 'readwrite', '/cron/'],
      ['role', 'add', 'other'],
      ['role', 'grant-permission', '--prefix', 'other', 'readwrite', '/other/'],
      ['user', 'grant-role', 'scheduler', 'cron'],
      ['user', 'grant-role', 'outsider', 'other'],
      ['auth', 'enable'],
    ];
    for (const args of setup) {
      const result = await etcdctl(store, args);
      expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
  }, 60_000);

  afterAll(async () => {
    for (const daemon of daemons) await daemon.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a job with master and worker connected as that user', async () => {
    const credentials = ['--user', 'scheduler', '--password', 'schedpw'];
    daemons.push(
      await startMasterProcess({
        endpoint: store.endpoint,
        id: 'auth-master',
        extraArgs: credentials,
      }),
    );
    daemons.push(
      await startWorkerProcess({
        endpoint: store.endpoint,
        id: 'auth-worker',
        extraArgs: credentials,
      }),
    );
    const trace = join(dir, 'trace');
    // The API requires a store user too, since the store has auth enabled (api-auth.test.ts).
    const env = { ETCRON_API: daemons[0]?.apiUrl ?? '', ETCRON_USER: 'scheduler', ETCRON_PASSWORD: 'schedpw' };
    const add = await runCli(
      [
        'job',
        'add',
        'tick',
        '--schedule',
        '* * * * * *',
        '--command',
        `echo "$ETCRON_SLOT" >> ${trace}`,
      ],
      env,
    );
    expect(add.code, add.stderr).toBe(0);
    await waitFor(
      'the job to run twice',
      () => {
        const lines = existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n') : [];
        return lines.length >= 2 ? true : undefined;
      },
      30_000,
    );
    await waitFor(
      'a succeeded run in the history',
      async () => {
        const history = await runCli(['job', 'history', 'tick', '-o', 'json'], env);
        return history.code === 0 && history.stdout.includes('"succeeded"') ? true : undefined;
      },
      15_000,
      250,
    );
    // The store really enforces auth: the same read without credentials is refused.
    const anonymous = await etcdctl(store, ['get', '/cron/jobs/tick']);
    expect(anonymous.stderr).toContain('etcdserver: user name is empty');
  }, 90_000);

  it('refuses to start as a user without /cron/, naming the permission and the user', async () => {
    // Started together: each is a process start plus a store round trip, nothing shared.
    const [master, worker, anonymous] = await Promise.all([
      runCli(
        [
          'master',
          '--endpoints',
          store.endpoint,
          '--api',
          '127.0.0.1:0',
          '--user',
          'outsider:outpw',
        ],
        {},
        30_000,
      ),
      runCli(
        ['worker', '--endpoints', store.endpoint],
        { ETCRON_USER: 'outsider', ETCRON_PASSWORD: 'outpw' },
        30_000,
      ),
      runCli(['worker', '--endpoints', store.endpoint], {}, 30_000),
    ]);
    expect(master.code).not.toBe(0);
    expect(master.stderr).toContain('permission denied reading /cron/jobs/ as user outsider');
    expect(worker.code).not.toBe(0);
    expect(worker.stderr).toContain('permission denied reading /cron/jobs/ as user outsider');
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain('the store requires authentication');
  }, 60_000);
});
