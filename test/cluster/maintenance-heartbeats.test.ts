// Issue 11 item 9: Hash, HashKV, a Snapshot download and Defragment on the leader of a store with
// tens of megabytes of history must not stall its heartbeats: with a 250 ms election timeout, a
// leader that stops sending for longer loses its term. Writes keep being answered meanwhile, and
// Defragment still gives the space back. The same test runs on etcd (ETCRON_CLUSTER_SUBJECT=etcd).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { child, int, type Outcome } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';

const KEYS = 48_000;
const VALUE = Buffer.alloc(1_000, 0x61);
/** etcd's --max-txn-ops default. */
const PUTS_PER_TXN = 128;
const HEARTBEAT_MS = 25;
const ELECTION_MS = 250;

const keyOf = (n: number): Buffer => Buffer.from(`big/${String(n).padStart(6, '0')}`);

function mustSucceed(what: string, outcome: Outcome): Extract<Outcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`${what}: ${outcome.code} ${outcome.message}`);
  return outcome;
}

describe(`3 ${clusterSubject()} members: maintenance on a large store keeps the leader`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, heartbeatIntervalMs: HEARTBEAT_MS, electionTimeoutMs: ELECTION_MS });
  }, 60_000);

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('Hash, HashKV, Snapshot and Defragment run without a leader change, and free the space', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    let leader = await cluster.leader();
    const client = (): ReturnType<Cluster['client']> => cluster.client(leader.index);
    // Load (8 batches in flight), then delete half and compact: history to hash, rows to remove
    // in steps, and free pages for Defragment.
    let nextBatch = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (nextBatch * PUTS_PER_TXN < KEYS) {
        const first = nextBatch++ * PUTS_PER_TXN;
        const success = Array.from({ length: Math.min(PUTS_PER_TXN, KEYS - first) }, (_, i) => ({
          request_put: { key: keyOf(first + i), value: VALUE },
        }));
        mustSucceed(`load batch at ${first}`, await client().txn({ success }));
      }
    }));
    mustSucceed('delete half', await client().deleteRange({ key: keyOf(0), range_end: keyOf(KEYS / 2) }));
    const put = mustSucceed('put', await client().put({ key: Buffer.from('big/last'), value: Buffer.from('x') }));
    const revision = int(child(put.value, 'header'), 'revision');
    mustSucceed('compact', await client().compact({ revision: String(revision), physical: true }));
    // Whatever the load did to the leadership is settled before the measured part starts.
    leader = await cluster.leader();
    const before = await cluster.statuses();
    const sizeBefore = int(mustSucceed('status', await client().status()).value, 'dbSize');

    // A writer beside the maintenance calls: every write must still be answered.
    let writing = true;
    let writes = 0;
    const writeFailures: string[] = [];
    let slowestWriteMs = 0;
    let slowestInStepMs = 0;
    const writer = (async () => {
      while (writing && writes < 5_000) {
        const started = performance.now();
        const outcome = await client().put({ key: Buffer.from('big/beside'), value: Buffer.from(String(writes)) });
        slowestWriteMs = Math.max(slowestWriteMs, performance.now() - started);
        slowestInStepMs = Math.max(slowestInStepMs, performance.now() - started);
        writes++;
        if (!outcome.ok) writeFailures.push(`${outcome.code} ${outcome.message}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    const timings: string[] = [];
    const timed = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      slowestInStepMs = 0;
      const result = await run();
      timings.push(`${name} ${Math.round(performance.now() - started)} ms (slowest write beside ${Math.round(slowestInStepMs)} ms)`);
      return result;
    };
    try {
      mustSucceed('Hash', await timed('Hash', () => client().call('Maintenance', 'Hash', {}, 120_000)));
      mustSucceed('HashKV', await timed('HashKV', () => client().call('Maintenance', 'HashKV', { revision: '0' }, 120_000)));
      const snapshot = await timed('Snapshot', () => client().snapshot(120_000));
      expect(snapshot.error).toBeNull();
      const snapshotBytes = snapshot.messages.reduce((sum, m) => sum + (Buffer.isBuffer(m['blob']) ? m['blob'].length : 0), 0);
      expect(snapshotBytes, 'snapshot bytes').toBeGreaterThan((KEYS / 2) * VALUE.length);
      mustSucceed('Defragment', await timed('Defragment', () => client().call('Maintenance', 'Defragment', {}, 120_000)));
    } finally {
      writing = false;
      await writer;
    }
    console.log(`maintenance (${cluster.subject}): ${timings.join(', ')}; ${writes} writes beside, slowest ${Math.round(slowestWriteMs)} ms`);

    const after = await cluster.statuses();
    expect(after.map((s) => [s.index, s.leaderId, s.raftTerm]), 'leader and term of every member')
      .toEqual(before.map((s) => [s.index, leader.memberId, leader.raftTerm]));
    expect(writeFailures).toEqual([]);
    expect(writes).toBeGreaterThan(0);
    const sizeAfter = int(mustSucceed('status', await client().status()).value, 'dbSize');
    // Half the values were deleted and compacted away: Defragment gives a good part of it back.
    expect(sizeAfter, `dbSize before ${sizeBefore}, after ${sizeAfter}`).toBeLessThan(sizeBefore * 0.8);
  }, 240_000);
});
