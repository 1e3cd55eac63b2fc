// Issue 4: a watch across a leader SIGKILL resumes with no gap and no duplicate. A raw watch on
// the leader breaks when it dies and is resumed on a survivor from last revision + 1; an etcd3
// client watch over all endpoints resumes by itself. Both must equal the members' final log
// (every revision once, in order).
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster } from '../support/cluster-process.js';
import { checkWatchEvents, type LogEvent, type WatchEvent } from '../support/cluster-linearizability.js';
import { waitFor } from '../support/ports.js';
import {
  openWatch, readLog, streamEvents, summarize, Workload, writeSentinel,
} from '../support/cluster-workload.js';

const PREFIX = 'watch/';
const KEYS = ['watch/a', 'watch/b', 'watch/c'];

describe('3 members: watches across a leader SIGKILL', () => {
  let cluster: Cluster;
  let etcd3: Etcd3 | undefined;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    etcd3?.close();
    await cluster?.teardown();
  });

  it('a raw watch resumed on another member and an etcd3 watch see every event once', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const leader = await cluster.leader();
    const start = (await cluster.status(leader.index))?.revision ?? 0;
    expect(start).toBeGreaterThan(0);

    const raw: LogEvent[] = [];
    let stream = await openWatch(cluster.client(leader.index), PREFIX, start + 1);

    etcd3 = new Etcd3({ hosts: cluster.members.map((m) => m.clientUrl) });
    const viaClient: WatchEvent[] = [];
    const watcher = await etcd3.watch().prefix(PREFIX).startRevision(String(start + 1)).create();
    watcher.on('put', (kv) => {
      viaClient.push({ revision: Number(kv.mod_revision), key: kv.key.toString(), value: kv.value.toString() });
    });
    watcher.on('delete', (kv) => {
      viaClient.push({ revision: Number(kv.mod_revision), key: kv.key.toString(), value: null });
    });

    const workload = new Workload(cluster, { clients: 4, keys: KEYS });
    let history;
    try {
      await workload.progress(40);
      await cluster.kill(leader.index);
      // The raw stream on the killed leader must really break.
      await waitFor('the raw watch on the killed leader to end', () => (stream.hasEnded() ? true : undefined), 10_000);
      raw.push(...streamEvents(stream));
      const lastSeen = raw[raw.length - 1]?.revision ?? start;
      const next = await cluster.newLeader(leader);
      stream = await openWatch(cluster.client(next.index), PREFIX, lastSeen + 1);
      await workload.progress(40);
      await cluster.restart(leader.index);
      await workload.progress(20);
    } finally {
      history = await workload.stop();
    }
    console.log(`watch: ${summarize(history)}`);
    const sentinel = await writeSentinel(cluster, PREFIX);
    await cluster.converged(20_000);
    await stream.until('the resumed raw watch to reach the sentinel',
      () => streamEvents(stream).some((e) => e.revision >= sentinel), 15_000);
    raw.push(...streamEvents(stream).filter((e) => e.revision < sentinel));
    stream.end();
    await waitFor('the etcd3 watch to reach the sentinel',
      () => (viaClient.some((e) => e.revision >= sentinel) ? true : undefined), 20_000);
    const log = await readLog(cluster, next(cluster, leader.index), PREFIX, sentinel);
    expect(log.length).toBeGreaterThan(80);

    const rawResult = checkWatchEvents(raw, log, PREFIX, start + 1);
    expect(rawResult.violations).toEqual([]);
    const clientResult = checkWatchEvents(viaClient.filter((e) => e.revision < sentinel), log, PREFIX, start + 1);
    expect(clientResult.violations).toEqual([]);
  }, 120_000);
});

/** Any member other than `index` (they all hold the same log once converged). */
function next(cluster: Cluster, index: number): number {
  return (index + 1) % cluster.size;
}
