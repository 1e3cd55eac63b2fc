// Issue 4: network partitions through test-owned peer proxies (test/support/cluster-partition.ts).
// The leader is cut off from both followers while clients keep reading and writing on every
// member, the isolated one included: the majority elects a new leader, the isolated leader
// steps down (CheckQuorum) and serves no stale linearizable read; after healing it follows the
// new leader. Then a follower is cut off. Nothing acknowledged is lost, revisions never go back,
// and the history passes checkers A and B (test/support/cluster-linearizability.ts).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { bytes, child, int, list, type ResponseStream } from '../support/compat-client.js';
import { checkWatchEvents, type LogEvent } from '../support/cluster-linearizability.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';
import {
  openWatch, RevisionMonitor, streamEvents, summarize, verifyHistory, Workload,
} from '../support/cluster-workload.js';

const PREFIX = 'partition/';
const KEYS = ['partition/a', 'partition/b', 'partition/c', 'partition/d'];

describe(`3 ${clusterSubject()} members: leader and follower cut off by a partition`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, withPeerProxies: true });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('elects on the majority side, serves nothing stale on the minority side, loses nothing', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const monitor = new RevisionMonitor(cluster);
    const workload = new Workload(cluster, { clients: 6, keys: KEYS });
    let history;
    let watched: { index: number; from: number; stream: ResponseStream; events: LogEvent[]; resumed: number } | null = null;
    try {
      await workload.progress(40);
      const old = await cluster.leader();
      // A watch on the member about to be cut off: after healing it must have every event once,
      // in order, never going back in time (etcd #15271). Resumed at last + 1 if it is cancelled.
      const from = ((await cluster.status(old.index))?.revision ?? 0) + 1;
      watched = { index: old.index, from, stream: await openWatch(cluster.client(old.index), PREFIX, from), events: [], resumed: 0 };
      cluster.isolate(old.index);
      const next = await cluster.newLeader(old, 20_000);
      expect(next.raftTerm).toBeGreaterThan(old.raftTerm);
      // CheckQuorum: the cut-off leader stops calling itself leader.
      await waitFor('the isolated leader to step down', async () => {
        const status = await cluster.status(old.index);
        return status !== null && status.leaderId !== old.memberId ? true : undefined;
      }, 10 * cluster.electionTimeoutMs);
      await workload.progress(40);

      // A write on the majority side, then a linearizable read on the isolated member: an
      // error or the new value, never the old one.
      const key = Buffer.from('partition-probe'); // outside PREFIX: not part of the history
      const put = await cluster.client(next.index).call('KV', 'Put', { key, value: Buffer.from('after-cut') }, 10_000);
      expect(put.ok).toBe(true);
      const read = await cluster.client(old.index).call('KV', 'Range', { key }, 3_000);
      if (read.ok) {
        expect(bytes(list(read.value, 'kvs')[0], 'value').toString()).toBe('after-cut');
      }
      // The cut was real: the isolated member's log stayed behind the majority's.
      const [isolated, majority] = await Promise.all([cluster.status(old.index), cluster.status(next.index)]);
      expect(isolated?.raftIndex ?? 0).toBeLessThan(majority?.raftIndex ?? 0);

      cluster.heal();
      await cluster.converged(20_000);
      await workload.progress(20);
      if (watched.stream.hasEnded()) {
        watched.events.push(...streamEvents(watched.stream));
        const last = watched.events[watched.events.length - 1]?.revision ?? watched.from - 1;
        watched.resumed += 1;
        watched.stream = await openWatch(cluster.client(old.index), PREFIX, last + 1);
      }

      const leader = await cluster.leader();
      const follower = cluster.runningIndexes().find((i) => i !== leader.index) as number;
      cluster.isolate(follower);
      await workload.progress(40);
      const during = await cluster.leader();
      expect(during.index).not.toBe(follower);
      cluster.heal();
      await cluster.converged(20_000);
      await workload.progress(20);
      expect(int(child(put.ok ? put.value : null, 'header'), 'revision')).toBeGreaterThan(0);
    } finally {
      cluster.heal();
      history = await workload.stop();
    }
    const samples = await monitor.stop();
    console.log(`partition: ${summarize(history)}`);
    expect(cluster.unidentifiedPeerConnections()).toBe(0);
    const verification = await verifyHistory(cluster, PREFIX, history);
    if (watched !== null) {
      if (watched.stream.hasEnded()) {
        watched.events.push(...streamEvents(watched.stream));
        const resumeFrom = (watched.events[watched.events.length - 1]?.revision ?? watched.from - 1) + 1;
        watched.resumed += 1;
        watched.stream = await openWatch(cluster.client(watched.index), PREFIX, resumeFrom);
      }
      const { stream } = watched;
      const last = verification.log[verification.log.length - 1]?.revision ?? 0;
      await stream.until('the watch on the once-isolated member to catch up',
        () => streamEvents(stream).some((e) => e.revision >= last), 15_000);
      watched.events.push(...streamEvents(stream).filter((e) => e.revision <= last));
      stream.end();
      console.log(`partition: watch on m${watched.index + 1}: ${watched.events.length} events, resumed ${watched.resumed} times`);
      expect(checkWatchEvents(watched.events, verification.log, PREFIX, watched.from).violations).toEqual([]);
    }
    expect(verification.logsDiffer).toEqual([]);
    expect(RevisionMonitor.backwards(samples)).toEqual([]);
    expect(verification.checkA.violations).toEqual([]);
    expect(verification.checkB.keys.filter((k) => k.verdict !== 'linearizable')).toEqual([]);
  }, 150_000);
});
