// Issue 11 item 4: a slow network must not end a member. Every peer link is delayed by
// 300-1500 ms (longer than the election timeout) while clients keep leases alive through every
// member: leaders come and go, forwarded keep-alives time out, and every member must keep
// running, answer with gRPC errors, and serve keep-alives again once the links are fast.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { int, type ResponseStream } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';

const SLOW_PHASE_MS = 8_000;
const KEEP_ALIVE_EVERY_MS = 40;

describe(`3 ${clusterSubject()} members: lease keep-alives over delayed peer links`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, withPeerProxies: true });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('keeps every member running and serving keep-alives again after the delay', { timeout: 90_000 }, async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const leader = await cluster.leader();
    const grant = await cluster.client(leader.index).call('Lease', 'LeaseGrant', { TTL: '60', ID: '0' });
    if (!grant.ok) throw new Error(`grant failed: ${grant.code} ${grant.message}`);
    const leaseId = String(grant.value['ID']);
    // Two streams per member, so renewals of one stream overtake each other's forwarding.
    const streams: ResponseStream[] = [];
    for (let index = 0; index < cluster.size; index++) {
      for (let copy = 0; copy < 2; copy++) streams.push(cluster.client(index).keepAliveStream());
    }
    cluster.delayPeerLinks({ minMs: 300, maxMs: 1_500 });
    const slowUntil = Date.now() + SLOW_PHASE_MS;
    while (Date.now() < slowUntil) {
      for (const stream of streams) if (!stream.hasEnded() && stream.failure() === null) stream.send({ ID: leaseId });
      await new Promise((resolve) => setTimeout(resolve, KEEP_ALIVE_EVERY_MS));
    }
    cluster.heal();
    // Streams that failed did so with one of etcd's own statuses (no leader, timeout, ...),
    // read before the test ends them itself (which fails them with CANCELLED).
    const failures = streams.map((stream) => stream.failure()).filter((f) => f !== null && !f.ok);
    for (const stream of streams) stream.end();
    expect(cluster.unexpectedExits()).toEqual([]);
    for (const failure of failures) expect(`${failure?.code}: ${failure?.message}`).toMatch(/^[A-Z_]+: etcdserver: /);
    await cluster.leader(30_000);
    for (let index = 0; index < cluster.size; index++) {
      const renewed = await waitFor(`a keep-alive answered by member ${index}`, async () => {
        const outcome = await cluster.client(index).keepAliveOnce(leaseId, 3_000);
        return outcome.ok && int(outcome.value, 'TTL') > 0 ? outcome : undefined;
      }, 30_000, 200);
      expect(int(renewed.value, 'TTL')).toBeGreaterThan(0);
    }
    expect(cluster.unexpectedExits()).toEqual([]);
  });
});
