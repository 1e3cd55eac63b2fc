// Issue 4: 5 members survive two failures (the leader and a follower SIGKILLed under load), and a
// minority side (3 of 5 killed) refuses writes and linearizable reads with an error instead of
// hanging; once a third member is back, writes succeed and nothing acknowledged was lost.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { child, int, type Outcome } from '../support/compat-client.js';
import { Cluster } from '../support/cluster-process.js';
import type { HistoryOp } from '../support/cluster-linearizability.js';
import {
  isDefiniteFailure, nowNs, RevisionMonitor, summarize, verifyHistory, Workload,
} from '../support/cluster-workload.js';

const PREFIX = 'five/';
const KEYS = ['five/a', 'five/b', 'five/c', 'five/d'];
/** A client deadline well above etcd's own request timeout (5 s + 2 election timeouts). */
const MINORITY_DEADLINE_MS = 25_000;

describe('5 members: two failures, then a minority', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 5 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('serves with two members down and refuses writes without a quorum', async () => {
    onTestFailed(() => { console.error(cluster.logTails(30)); });
    const monitor = new RevisionMonitor(cluster);
    const workload = new Workload(cluster, { clients: 5, keys: KEYS });
    const killed: number[] = [];
    let history: HistoryOp[];
    try {
      await workload.progress(30);
      const first = await cluster.leader();
      await cluster.kill(first.index);
      killed.push(first.index);
      const second = await cluster.newLeader(first);
      const follower = cluster.runningIndexes().find((i) => i !== second.index);
      if (follower === undefined) throw new Error('no follower');
      await cluster.kill(follower);
      killed.push(follower);
      await workload.progress(40); // 3 of 5 still commit
      expect(cluster.runningIndexes()).toHaveLength(3);
    } finally {
      history = await workload.stop();
    }

    // Minority: kill the current leader too, leaving 2 of 5.
    const third = await cluster.leader();
    await cluster.kill(third.index);
    killed.push(third.index);
    const minority = cluster.runningIndexes();
    expect(minority).toHaveLength(2);
    const refusals = await Promise.all(minority.map(async (index) => {
      const value = `minority-${index}`;
      const callNs = nowNs();
      const started = Date.now();
      const put = await cluster.client(index).call('KV', 'Put',
        { key: Buffer.from(`${PREFIX}a`), value: Buffer.from(value) }, MINORITY_DEADLINE_MS);
      const putMs = Date.now() - started;
      history.push(minorityOp(history.length + index, index, value, callNs, put));
      const readStarted = Date.now();
      const read = await cluster.client(index).call('KV', 'Range', { key: Buffer.from(`${PREFIX}a`) }, MINORITY_DEADLINE_MS);
      const readMs = Date.now() - readStarted;
      const local = await cluster.client(index).call('KV', 'Range', { key: Buffer.from(`${PREFIX}a`), serializable: true }, 5_000);
      return { index, put, putMs, read, readMs, local };
    }));
    for (const { index, put, putMs, read, readMs, local } of refusals) {
      const where = `m${index + 1}`;
      // An error from the server, well before the client's own deadline.
      expect(put.ok, `${where} put`).toBe(false);
      expect(!put.ok && put.code, `${where} put code`).toBe('UNAVAILABLE');
      expect(!put.ok && put.message, `${where} put message`).toMatch(/^etcdserver: /);
      expect(putMs, `${where} put time`).toBeLessThan(MINORITY_DEADLINE_MS - 5_000);
      expect(read.ok, `${where} linearizable read`).toBe(false);
      expect(!read.ok && read.code, `${where} read code`).toBe('UNAVAILABLE');
      expect(readMs, `${where} read time`).toBeLessThan(MINORITY_DEADLINE_MS - 5_000);
      // A serializable read is answered locally, as etcd does.
      expect(local.ok, `${where} serializable read`).toBe(true);
    }

    // Quorum again: one member back makes 3 of 5.
    const back = killed.pop() as number;
    await cluster.restart(back);
    await cluster.leader(20_000);
    const put = await cluster.client(back).call('KV', 'Put', { key: Buffer.from(`${PREFIX}b`), value: Buffer.from('after-quorum') }, 10_000);
    expect(put.ok).toBe(true);
    for (const index of killed) await cluster.restart(index);
    await cluster.converged(30_000);
    const samples = await monitor.stop();
    console.log(`five: ${summarize(history)}`);
    // The post-quorum put is part of the history too.
    history.push({
      id: history.length + 100, client: 99, input: { kind: 'put', key: `${PREFIX}b`, value: 'after-quorum' },
      callNs: nowNs() - 1, returnNs: nowNs(), status: 'ok',
      output: put.ok ? { kind: 'put', revision: int(child(put.value, 'header'), 'revision') } : null,
    });
    const verification = await verifyHistory(cluster, PREFIX, history);
    expect(verification.logsDiffer).toEqual([]);
    expect(RevisionMonitor.backwards(samples)).toEqual([]);
    expect(verification.checkA.violations).toEqual([]);
    expect(verification.checkB.keys.filter((k) => k.verdict !== 'linearizable')).toEqual([]);
  }, 150_000);
});

function minorityOp(id: number, index: number, value: string, callNs: number, outcome: Outcome): HistoryOp {
  const input = { kind: 'put', key: `${PREFIX}a`, value } as const;
  if (outcome.ok) {
    return { id, client: 100 + index, input, callNs, returnNs: nowNs(), status: 'ok', output: { kind: 'put', revision: 0 } };
  }
  const status = isDefiniteFailure(outcome) ? 'failed' : 'unknown';
  return {
    id, client: 100 + index, input, callNs, returnNs: status === 'failed' ? nowNs() : Infinity, status,
    output: null, error: `${outcome.code}: ${outcome.message}`,
  };
}
