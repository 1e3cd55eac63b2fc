// Periodic auto-compaction on a 3-member cluster: history older than the retention goes, and only
// the leader proposes compactions (as etcd pauses the compactor on followers), so every member's
// log of completed auto compactions comes from the member that led at the time.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';

const RETENTION = '2s';

describe('3 etcron members: periodic auto-compaction from the leader only', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({
      size: 3,
      subject: 'etcron',
      extraArgs: ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', RETENTION],
    });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('compacts old revisions, proposed by the leader alone', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const leader = await cluster.leader();
    const kv = cluster.client(leader.index);
    const key = Buffer.from('auto-compaction/k');
    const first = await kv.call('KV', 'Put', { key, value: Buffer.from('v0') });
    expect(first.ok).toBe(true);
    // Keep writing until revision 2 is compacted away on every member (bounded by waitFor).
    let round = 0;
    await waitFor('revision 2 compacted on every member', async () => {
      await kv.call('KV', 'Put', { key, value: Buffer.from(`v${++round}`) });
      for (let index = 0; index < cluster.size; index++) {
        const old = await cluster.client(index).call('KV', 'Range', { key, revision: '2', serializable: true });
        if (old.ok || old.message !== 'etcdserver: mvcc: required revision has been compacted') {
          return undefined;
        }
      }
      return true;
    }, 30_000, 200);
    const doneBy = cluster.members.map((member) =>
      readFileSync(member.logPath, 'utf8').split('\n').filter((line) => line.includes('auto compaction done')).length);
    expect(await cluster.leader()).toMatchObject({ index: leader.index });
    expect(doneBy[leader.index]).toBeGreaterThan(0);
    expect(doneBy.reduce((sum, count) => sum + count, 0)).toBe(doneBy[leader.index]);
  });
});
