// Issue 11 item 3: peer connections that stop carrying bytes without being closed (a blackholing
// middlebox, a half-open connection) must be noticed and replaced within seconds, as etcd's
// 5 s peer timeouts do. A follower's links are blackholed for a while, then the same TCP
// connections carry bytes again, with what was sent meanwhile lost: the follower must follow
// the leader again and serve linearizable reads, without any connection being reset for it.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { child, int } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';

const BLACKHOLE_MS = 4_000;
const RECOVERY_BOUND_MS = 20_000;

describe(`3 ${clusterSubject()} members: a follower's peer links blackholed, then let go`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, withPeerProxies: true });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('the follower follows and serves linearizable reads again within seconds', { timeout: 90_000 }, async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const leader = await cluster.leader();
    const follower = (leader.index + 1) % cluster.size;
    const key = Buffer.from('blackhole/k');
    const write = async (value: string): Promise<number> => {
      const put = await waitFor(`a put of ${value}`, async () => {
        const outcome = await cluster.client(leader.index).call('KV', 'Put', { key, value: Buffer.from(value) }, 2_000);
        return outcome.ok ? outcome : undefined;
      }, 20_000, 100);
      return int(child(put.value, 'header'), 'revision');
    };
    await write('before');
    cluster.isolate(follower);
    const isolatedAt = Date.now();
    // Writes go on between the other two while the follower hears nothing.
    let written = 0;
    while (Date.now() - isolatedAt < BLACKHOLE_MS) {
      await write(`during-${written++}`);
    }
    cluster.heal({ resetConnections: false });
    const healedAt = Date.now();
    const lastRevision = await write('after');
    await waitFor('a linearizable read on the follower that sees the last write', async () => {
      const outcome = await cluster.client(follower).call('KV', 'Range', { key }, 1_500);
      if (!outcome.ok) return undefined;
      const revision = int(child(outcome.value, 'header'), 'revision');
      return revision >= lastRevision ? true : undefined;
    }, RECOVERY_BOUND_MS, 100);
    const recoveryMs = Date.now() - healedAt;
    console.log(`blackhole: ${written} writes during ${BLACKHOLE_MS} ms; follower reads again ${recoveryMs} ms after the links carried bytes again`);
    const statuses = await cluster.converged(RECOVERY_BOUND_MS);
    expect(statuses.every((status) => status.leaderId === statuses[0]?.leaderId)).toBe(true);
  });
});
