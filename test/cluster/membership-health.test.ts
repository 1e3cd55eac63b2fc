// Issue #11 item 1 (the health half of --strict-reconfig-check), on etcd 3.4 and on etcron
// (ETCRON_CLUSTER_SUBJECT): with one of three members down, adding a voter and removing a live
// member are refused "etcdserver: unhealthy cluster" (the rest would have no margin), while the
// member that is down may be removed.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { ctlAt as ctl } from '../support/etcdctl-endpoints.js';
import { waitFor } from '../support/ports.js';


/** Hex member IDs by name, from `etcdctl member list`. */
async function idsByName(endpoints: readonly string[]): Promise<Map<string, string>> {
  const listed = await ctl(endpoints, ['member', 'list']);
  if (listed.code !== 0) throw new Error(listed.stderr);
  return new Map(listed.stdout.trim().split('\n').map((line) => {
    const [id = '', , name = ''] = line.split(', ');
    return [name, id] as const;
  }));
}

describe(`3 ${clusterSubject()} members, one down: membership changes that need a healthy cluster`, () => {
  let cluster: Cluster;
  beforeAll(async () => { cluster = await Cluster.start({ size: 3 }); });
  afterAll(async () => { await cluster?.teardown(); });

  it('refuses to add a voter or remove a live member, and removes the one that is down', { timeout: 120_000 }, async () => {
    onTestFailed(() => { console.error(cluster.logTails(30)); });
    const all = cluster.endpoints();
    const ids = await idsByName(all);
    // The cluster serves first (all three members connected).
    await waitFor('the cluster to be writable', async () => ((await ctl(all, ['put', 'h', '1'])).code === 0 ? true : undefined), 20_000, 200);
    await cluster.kill(2);
    const live = [cluster.member(0).endpoint];
    await waitFor('the two live members to serve', async () => ((await ctl(live, ['put', 'h', '2'])).code === 0 ? true : undefined), 20_000, 200);

    const add = await ctl(live, ['member', 'add', 'extra', '--peer-urls=http://127.0.0.1:1']);
    expect(add.code).not.toBe(0);
    expect(add.stderr).toContain('etcdserver: unhealthy cluster');

    const liveOther = ids.get(cluster.member(1).name) ?? '';
    const removeLive = await ctl(live, ['member', 'remove', liveOther]);
    expect(removeLive.code).not.toBe(0);
    expect(removeLive.stderr).toContain('etcdserver: unhealthy cluster');

    const downId = ids.get(cluster.member(2).name) ?? '';
    const removeDown = await waitFor('the member that is down to be removed', async () => {
      const attempt = await ctl(live, ['member', 'remove', downId]);
      if (attempt.code !== 0) throw new Error(attempt.stderr);
      return attempt;
    }, 20_000, 500);
    expect(removeDown.stdout).toMatch(new RegExp(`Member +${downId} removed`));
    expect([...(await idsByName(live)).values()].sort()).toEqual([ids.get(cluster.member(0).name), liveOther].sort());
  });
});
