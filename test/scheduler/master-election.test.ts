import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { startElection, readLeader, type Election, type LeaderTerm } from '../../master/election.js';
import { systemClock } from '../../shared/clock.js';
import { createLogger } from '../../shared/log.js';

// Leader election among masters (issue #5: "several masters, one leader by election on the
// store, the others standing by and taking over when the leader dies").
const PREFIX = '/cron/master/election/';

interface Candidate {
  readonly name: string;
  readonly election: Election;
  readonly events: string[];
  readonly terms: LeaderTerm[];
}

describe.skipIf(!hasStoreUnderTest())('master election on real etcd', () => {
  let store: StoreProcess;
  let client: Etcd3;
  const clients: Etcd3[] = [];

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = new Etcd3({ hosts: store.clientUrl });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  function candidate(name: string): Candidate {
    const own = new Etcd3({ hosts: store.clientUrl });
    clients.push(own);
    const events: string[] = [];
    const terms: LeaderTerm[] = [];
    const election = startElection({
      client: own,
      prefix: PREFIX,
      value: name,
      ttlSeconds: 2,
      clock: systemClock,
      logger: createLogger('silent'),
      retryDelayMs: 200,
      onElected: (term) => {
        events.push('elected');
        terms.push(term);
      },
      onDeposed: (_term, reason) => events.push(`deposed:${reason}`),
    });
    return { name, election, events, terms };
  }

  it('elects exactly one leader, hands over on resign, and deposes when the key is deleted', async () => {
    const a = candidate('a');
    await waitFor('a elected', () => (a.election.isLeader() ? true : undefined), 10_000);
    const b = candidate('b');
    // b queues behind a: its campaign key exists, yet it does not lead.
    await waitFor('b campaign key', async () =>
      (await client.getAll().prefix(PREFIX).count()) === 2 ? true : undefined);
    expect(b.election.isLeader()).toBe(false);
    expect((await readLeader(client, PREFIX))?.value).toBe('a');

    // Resign: a's lease is revoked, so b takes over without waiting for a TTL to pass. Checked at
    // the store rather than by a stopwatch, which a loaded machine can stretch past the 2 s TTL.
    const aLease = a.terms[0]?.leaseId;
    expect(aLease).toBeDefined();
    await a.election.stop();
    expect(a.events).toEqual(['elected', 'deposed:resigned']);
    expect(Number((await client.leaseClient.leaseTimeToLive({ ID: aLease ?? '0' })).TTL)).toBe(-1);
    await waitFor('b elected', () => (b.election.isLeader() ? true : undefined), 5_000);
    expect((await readLeader(client, PREFIX))?.value).toBe('b');

    // Someone deletes the leader's key: b must stop leading and campaign again with a new key.
    const c = candidate('c');
    await waitFor('c queued', async () =>
      (await client.getAll().prefix(PREFIX).count()) === 2 ? true : undefined);
    const firstTerm = b.terms[0];
    expect(firstTerm).toBeDefined();
    await client.delete().key(firstTerm?.key ?? '');
    await waitFor('b deposed', () =>
      b.events.includes('deposed:campaign key deleted') ? true : undefined, 5_000);
    await waitFor('c elected', () => (c.election.isLeader() ? true : undefined), 5_000);
    // Terms are fenced by create revision: the new leader's is higher.
    expect(c.terms[0]?.createRevision ?? 0).toBeGreaterThan(firstTerm?.createRevision ?? 0);
    expect(b.election.isLeader()).toBe(false);
    await b.election.stop();
    await c.election.stop();
    expect(await client.getAll().prefix(PREFIX).count()).toBe(0);
  });

  it('a standby takes over when the store ends the leader lease', async () => {
    const a = candidate('a2');
    await waitFor('a2 elected', () => (a.election.isLeader() ? true : undefined), 10_000);
    const b = candidate('b2');
    await waitFor('b2 queued', async () =>
      (await client.getAll().prefix(PREFIX).count()) === 2 ? true : undefined);
    // The store revoking the lease is what TTL expiry of a dead leader looks like to the others.
    const leaseId = a.terms[0]?.leaseId ?? '0';
    await client.leaseClient.leaseRevoke({ ID: leaseId });
    await waitFor('b2 elected', () => (b.election.isLeader() ? true : undefined), 5_000);
    // The old leader notices its key is gone and stops leading, then queues again behind b2.
    await waitFor('a2 deposed', () => (a.election.isLeader() ? undefined : true), 5_000);
    expect(a.events[1]).toMatch(/^deposed:/);
    await waitFor('a2 queued again', async () =>
      (await client.getAll().prefix(PREFIX).count()) === 2 ? true : undefined, 5_000);
    expect((await readLeader(client, PREFIX))?.value).toBe('b2');
    await a.election.stop();
    await b.election.stop();
  });

  it('the leader steps down by its own clock when the store stops answering', async () => {
    const a = candidate('a3');
    await waitFor('a3 elected', () => (a.election.isLeader() ? true : undefined), 10_000);
    const b = candidate('b3');
    await waitFor('b3 queued', async () =>
      (await client.getAll().prefix(PREFIX).count()) === 2 ? true : undefined);
    // Freeze the store: keepalives go unanswered, and nobody can tell a's lease is still valid.
    store.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    try {
      // a must stop leading before its lease (TTL 2 s from its last answered keepalive) could
      // expire at the store and another master be elected: never two leaders at once.
      const stepDownMs = await waitFor('a3 to step down', () =>
        (a.election.isLeader() ? undefined : Date.now() - frozenAt), 5_000);
      expect(stepDownMs).toBeLessThan(2_000);
      expect(a.events[1]).toBe('deposed:keepalive deadline passed');
    } finally {
      store.child.kill('SIGCONT');
    }
    // Once the store answers again, exactly one of them leads.
    await waitFor('one leader again', () =>
      (a.election.isLeader() !== b.election.isLeader() ? true : undefined), 15_000);
    await a.election.stop();
    await b.election.stop();
  });
});
