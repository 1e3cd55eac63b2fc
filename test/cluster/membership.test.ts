// Issue #11 item 1: runtime membership with etcdctl, on etcd 3.4 and on etcron
// (ETCRON_CLUSTER_SUBJECT): a learner is added to a running 3-member cluster, joins with
// --initial-cluster-state existing, catches up, is promoted; then the leader is removed, stops,
// and the other three elect a leader and go on. Each step's outcome is read back from the cluster.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ETCDCTL_BINARY } from '../support/etcd-process.js';
import { ctlAt as ctl } from '../support/etcdctl-endpoints.js';
import { waitFor } from '../support/ports.js';


/** One line of `etcdctl member list`: hex ID, status, name, peer URLs, client URLs, learner. */
interface ListedMember { id: string; started: boolean; name: string; peerUrls: string[]; isLearner: boolean }

const run = promisify(execFile);

describe(`3 ${clusterSubject()} members: add a learner, promote it, remove the leader`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });


  /** The simple output, not JSON: etcdctl prints IDs in JSON as numbers that exceed 2^53. */
  async function memberList(endpoints: readonly string[]): Promise<ListedMember[]> {
    const listed = await ctl(endpoints, ['member', 'list']);
    if (listed.code !== 0) throw new Error(`member list: ${listed.stderr}`);
    return listed.stdout.trim().split('\n').map((line) => {
      const [id = '', status = '', name = '', peerUrls = '', , isLearner = ''] = line.split(', ');
      return { id, started: status === 'started', name, peerUrls: peerUrls.split(','), isLearner: isLearner === 'true' };
    });
  }

  it('changes membership through the log, one change at a time, and keeps serving', { timeout: 120_000 }, async () => {
    onTestFailed(() => { console.error(cluster.logTails(30)); });
    const endpoints = cluster.endpoints();
    for (let i = 0; i < 20; i++) expect((await ctl(endpoints, ['put', `before/${i}`, `v${i}`])).code).toBe(0);

    const joining = await cluster.prepareMember();
    // etcd refuses changes until every member has been connected for 5 s ("unhealthy cluster").
    const added = await waitFor('member add to be accepted', async () => {
      const attempt = await ctl(endpoints, ['member', 'add', joining.name, '--learner', `--peer-urls=${joining.peerUrl}`]);
      if (attempt.code !== 0) throw new Error(attempt.stderr);
      return attempt;
    }, 20_000, 500);
    expect(added.stdout).toMatch(/^Member +[0-9a-f]+ added to cluster +[0-9a-f]+/);
    expect(added.stdout).toContain(`ETCD_INITIAL_CLUSTER_STATE="existing"`);
    // A second learner while one is there: etcd 3.4 allows one.
    const second = await ctl(endpoints, ['member', 'add', 'extra', '--learner', '--peer-urls=http://127.0.0.1:1']);
    expect(second.stderr).toContain('etcdserver: too many learner members in cluster');

    let members = await memberList(endpoints);
    const learner = members.find((m) => m.peerUrls.includes(joining.peerUrl));
    expect(learner?.isLearner).toBe(true);
    expect(learner?.started).toBe(false);
    const learnerHex = learner?.id ?? 'none';

    await cluster.startJoining(joining.index);
    // Caught up: the learner serves the writes made before it joined (serializable: learners
    // answer no linearizable reads).
    await waitFor('the learner to hold the earlier writes', async () => {
      const got = await ctl([joining.endpoint], ['get', 'before/19', '--consistency=s', '--print-value-only']);
      return got.stdout.trim() === 'v19' ? true : undefined;
    }, 30_000, 200);
    members = await memberList(endpoints);
    expect(members.find((m) => m.peerUrls.includes(joining.peerUrl))?.name).toBe(joining.name);

    // Promotion: retried until the leader sees the learner in sync.
    await waitFor('the learner to be promoted', async () => {
      const promoted = await ctl(endpoints, ['member', 'promote', learnerHex]);
      if (promoted.code !== 0) throw new Error(promoted.stderr);
      return true;
    }, 30_000, 500);
    members = await memberList(endpoints);
    expect(members).toHaveLength(4);
    expect(members.every((m) => m.isLearner !== true)).toBe(true);
    const again = await ctl(endpoints, ['member', 'promote', learnerHex]);
    expect(again.stderr).toContain('etcdserver: can only promote a learner member');

    // Remove the leader: it applies its own removal and stops; the rest elect a leader.
    const leader = await cluster.leader();
    const leaderHex = BigInt(leader.memberId).toString(16);
    const others = cluster.endpoints().filter((e) => e !== cluster.member(leader.index).endpoint);
    const removed = await waitFor('member remove to be accepted', async () => {
      const attempt = await ctl(others, ['member', 'remove', leaderHex]);
      if (attempt.code !== 0) throw new Error(attempt.stderr);
      return attempt;
    }, 20_000, 500);
    // etcdctl prints the ID with %16x: a shorter one is padded with spaces.
    expect(removed.stdout).toContain(`Member ${leaderHex.padStart(16, " ")} removed from cluster`);
    cluster.markRemoved(leader.index);
    await cluster.waitForExit(leader.index, 20_000);
    members = await memberList(others);
    expect(members.map((m) => m.id)).not.toContain(leaderHex);
    expect(members).toHaveLength(3);
    await waitFor('a write after the removal', async () => ((await ctl(others, ['put', 'after', 'x'])).code === 0 ? true : undefined), 20_000, 200);
    const unknown = await ctl(others, ['member', 'remove', leaderHex]);
    expect(unknown.stderr).toContain('etcdserver: member not found');
    // The joined member serves the new write too.
    await waitFor('the joined member to serve the new write', async () => {
      const got = await ctl([joining.endpoint], ['get', 'after', '--print-value-only']);
      return got.stdout.trim() === 'x' ? true : undefined;
    }, 20_000, 200);
  });
});

describe(`1 ${clusterSubject()} member grows to 2, then 3`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 1 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('adds voters to a one-member store one at a time, and keeps every write', { timeout: 120_000 }, async () => {
    onTestFailed(() => { console.error(cluster.logTails(30)); });
    const first = cluster.endpoints();
    expect((await run(ETCDCTL_BINARY, [`--endpoints=${first.join(',')}`, 'put', 'before', 'x'])).stdout).toContain('OK');
    for (let added = 0; added < 2; added++) {
      const joining = await cluster.prepareMember();
      await waitFor(`member add of ${joining.name}`, async () => {
        const { stdout } = await run(ETCDCTL_BINARY, [`--endpoints=${cluster.endpoints().filter((e) => e !== joining.endpoint).join(',')}`,
          '--command-timeout=10s', 'member', 'add', joining.name, `--peer-urls=${joining.peerUrl}`]);
        return stdout.includes('added to cluster') ? true : undefined;
      }, 30_000, 500).catch((err: unknown) => { throw err; });
      await cluster.startJoining(joining.index);
      await waitFor(`${joining.name} to serve the first write`, async () => {
        const { stdout } = await run(ETCDCTL_BINARY, [`--endpoints=${joining.endpoint}`, 'get', 'before', '--print-value-only']);
        return stdout.trim() === 'x' ? true : undefined;
      }, 30_000, 200).catch((err: unknown) => { throw err; });
    }
    const { stdout } = await run(ETCDCTL_BINARY, [`--endpoints=${cluster.endpoints().join(',')}`, 'member', 'list']);
    expect(stdout.trim().split('\n').filter((l) => l.includes(', started, '))).toHaveLength(3);
    await waitFor('a write with three voters', async () => {
      const put = await run(ETCDCTL_BINARY, [`--endpoints=${cluster.endpoints().join(',')}`, 'put', 'after', 'y']).catch(() => ({ stdout: '' }));
      return put.stdout.includes('OK') ? true : undefined;
    }, 20_000, 200);
  });
});
