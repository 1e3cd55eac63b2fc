// Issue 7: auth on a 3-member cluster. Authenticate is proposed through the log, so the token one
// member hands out is known to every member that applied the entry: a client may authenticate on
// one member and call another at once. Users, roles and the enabled flag survive a member's
// SIGKILL (its tokens live in memory; whether one survives depends on what the restart replays,
// in etcd as here, so that is not asserted).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { CompatClient, Msg, Outcome } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';

const READ = 0;

function refusal(outcome: Outcome): string {
  return outcome.ok ? 'ok' : `${outcome.code} ${outcome.message}`;
}

async function must(
  client: CompatClient,
  service: string,
  method: string,
  request: Msg,
): Promise<void> {
  const outcome = await client.call(service, method, request);
  if (!outcome.ok) throw new Error(`${method}: ${outcome.code} ${outcome.message}`);
}

async function tokenFrom(client: CompatClient, name: string, password: string): Promise<string> {
  const outcome = await client.call('Auth', 'Authenticate', { name, password });
  if (!outcome.ok) throw new Error(`Authenticate: ${outcome.code} ${outcome.message}`);
  return String(outcome.value['token']);
}

describe(`3 ${clusterSubject()} members: auth tokens and permissions on every member`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('a token from one member works on the others at once; a restarted member still enforces auth', async () => {
    onTestFailed(() => {
      console.error(cluster.logTails(40));
    });
    const admin = cluster.client((await cluster.leader()).index);
    await must(admin, 'Auth', 'UserAdd', { name: 'root', password: 'rootpw' });
    await must(admin, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await must(admin, 'Auth', 'UserAdd', { name: 'reader', password: 'readerpw' });
    await must(admin, 'Auth', 'RoleAdd', { name: 'reader' });
    await must(admin, 'Auth', 'RoleGrantPermission', {
      name: 'reader',
      perm: { permType: READ, key: Buffer.from('/x/'), range_end: Buffer.from('/x0') },
    });
    await must(admin, 'Auth', 'UserGrantRole', { user: 'reader', role: 'reader' });
    await must(admin, 'Auth', 'AuthEnable', {});

    const range = { key: Buffer.from('/x/a') };
    for (const from of [0, 1, 2]) {
      const token = await tokenFrom(cluster.client(from), 'reader', 'readerpw');
      expect(token).toMatch(/^[a-zA-Z]{16}\.\d+$/);
      for (const to of [0, 1, 2]) {
        const client = cluster.client(to);
        expect(
          refusal(await client.call('KV', 'Range', range, 10_000, { token })),
          `token of ${from} on ${to}`,
        ).toBe('ok');
        const put = await client.call(
          'KV',
          'Put',
          { key: Buffer.from('/x/a'), value: Buffer.from('v') },
          10_000,
          { token },
        );
        expect(refusal(put)).toBe('PERMISSION_DENIED etcdserver: permission denied');
      }
    }
    const anonymous = await cluster.client(1).call('KV', 'Range', range);
    expect(refusal(anonymous)).toBe('INVALID_ARGUMENT etcdserver: user name is empty');
    const bogus = await cluster
      .client(1)
      .call('KV', 'Range', range, 10_000, { token: 'abcdefghijklmnop.1' });
    expect(refusal(bogus)).toBe('UNAUTHENTICATED etcdserver: invalid auth token');

    const leader = await cluster.leader();
    const follower = (leader.index + 1) % 3;
    await cluster.kill(follower);
    await cluster.restart(follower);
    const restarted = cluster.client(follower);
    // Users, roles and the enabled flag were applied before the kill and are still enforced.
    await waitFor(
      'the restarted member to answer',
      async () => {
        const outcome = await restarted.call('KV', 'Range', range, 2_000);
        return outcome.ok || outcome.code !== 'UNAVAILABLE' ? outcome : undefined;
      },
      20_000,
      200,
    ).then((outcome) =>
      expect(refusal(outcome)).toBe('INVALID_ARGUMENT etcdserver: user name is empty'),
    );
    const fresh = await tokenFrom(restarted, 'reader', 'readerpw');
    expect(
      refusal(
        await cluster.client(leader.index).call('KV', 'Range', range, 10_000, { token: fresh }),
      ),
    ).toBe('ok');
  }, 90_000);
});
