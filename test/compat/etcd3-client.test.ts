// The etcd3 npm client, the one etcron's scheduler uses, against the subject store: KV and txn,
// watch (including resume after the connection is cut), lease keepalive and expiry, lock and
// election. Every wait is bounded.
import { Etcd3, EtcdLockFailedError } from 'etcd3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompatClient, headerRevision } from '../support/compat-client.js';
import { CutProxy } from '../support/compat-proxy.js';
import { disposeStores, startSubject, subjectKind } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

let store: StoreProcess | undefined;
const clients: Etcd3[] = [];

function client(endpoint = store?.endpoint ?? 'none'): Etcd3 {
  const made = new Etcd3({ hosts: `http://${endpoint}`, dialTimeout: 3_000 });
  clients.push(made);
  return made;
}

/** Rejects when `promise` does not settle within `timeoutMs`. */
async function within<T>(what: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

beforeEach(async () => {
  store = await startSubject();
});

afterEach(async () => {
  for (const made of clients.splice(0)) made.close();
  await disposeStores(store);
  store = undefined;
});

describe(`etcd3 npm client against the ${subjectKind()} store`, () => {
  it('KV: put, get, prefix, delete, txn, revisions', async () => {
    const etcd = client();
    await etcd.put('app/a').value('1');
    await etcd.put('app/b').value('2');
    await etcd.put('other').value('x');
    expect(await etcd.get('app/a').string()).toBe('1');
    expect(await etcd.get('missing').string()).toBeNull();
    expect(await etcd.getAll().prefix('app/').strings()).toEqual({ 'app/a': '1', 'app/b': '2' });
    expect(await etcd.getAll().prefix('app/').count()).toBe(2);
    const range = await etcd.get('app/b').exec();
    expect(range.header.revision).toBe('4');
    expect(range.kvs[0]?.create_revision).toBe('3');
    expect(range.kvs[0]?.version).toBe('1');
    const swapped = await etcd.if('app/a', 'Value', '==', '1')
      .then(etcd.put('app/a').value('one'))
      .else(etcd.get('app/a'))
      .commit();
    expect(swapped.succeeded).toBe(true);
    const refused = await etcd.if('app/a', 'Value', '==', '1').then(etcd.put('app/a').value('uno')).commit();
    expect(refused.succeeded).toBe(false);
    expect(await etcd.get('app/a').string()).toBe('one');
    const created = await etcd.if('fresh', 'Create', '==', 0).then(etcd.put('fresh').value('f')).commit();
    expect(created.succeeded).toBe(true);
    const deleted = await etcd.delete().prefix('app/').exec();
    expect(deleted.deleted).toBe('2');
    expect(await etcd.getAll().prefix('app/').keys()).toEqual([]);
    expect((await etcd.get('other').exec()).kvs[0]?.mod_revision).toBe('4');
  });

  it('watch: events in order with prev_kv, and a resume after the connection is cut', async () => {
    const target = store;
    if (target === undefined) throw new Error('no store');
    const proxy = new CutProxy(Number(target.endpoint.split(':')[1]));
    await proxy.start();
    try {
      const watching = client(proxy.endpoint);
      const writer = new CompatClient(target.endpoint);
      const seen: string[] = [];
      const watcher = await within('watch create', watching.watch().prefix('w/').withPreviousKV().create());
      watcher.on('put', (kv, previous) => {
        seen.push(`put ${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision} prev=${previous?.value.toString() ?? '-'}`);
      });
      watcher.on('delete', (kv) => seen.push(`delete ${kv.key.toString()}@${kv.mod_revision}`));
      let disconnects = 0;
      watcher.on('disconnected', () => { disconnects++; });
      const revisions: number[] = [];
      const write = async (key: string, value: string | null): Promise<void> => {
        const outcome = value === null
          ? await writer.deleteRange({ key: Buffer.from(key) })
          : await writer.put({ key: Buffer.from(key), value: Buffer.from(value) });
        expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
        revisions.push(headerRevision(outcome));
      };
      await write('w/a', '1');
      await write('w/a', '2');
      await write('w/b', '3');
      await write('w/a', null);
      await waitFor('the first four events', () => (seen.length >= 4 ? true : undefined), 10_000);
      proxy.cut(true);
      await waitFor('the watcher to notice the cut', () => (disconnects > 0 ? true : undefined), 10_000);
      await write('w/c', 'during-outage');
      await write('w/b', 'changed-during-outage');
      proxy.restore();
      await write('w/d', 'after');
      await waitFor('the events written during the outage', () => (seen.length >= 7 ? true : undefined), 20_000)
        .catch(() => undefined);
      writer.close();
      expect(seen).toEqual([
        `put w/a=1@${revisions[0]} prev=-`,
        `put w/a=2@${revisions[1]} prev=1`,
        `put w/b=3@${revisions[2]} prev=-`,
        `delete w/a@${revisions[3]}`,
        `put w/c=during-outage@${revisions[4]} prev=-`,
        `put w/b=changed-during-outage@${revisions[5]} prev=3`,
        `put w/d=after@${revisions[6]} prev=-`,
      ]);
      await watcher.cancel();
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('lease: keepalive holds the key past its TTL; without keepalive it expires and deletes the key', async () => {
    const etcd = client();
    const kept = etcd.lease(2);
    let lost = 0;
    let renewals = 0;
    kept.on('lost', () => { lost++; });
    kept.on('keepaliveSucceeded', () => { renewals++; });
    await kept.put('leased/kept').value('alive');
    await waitFor('three keepalive renewals (about 2 s, past the 2 s TTL)', () => (renewals >= 3 ? true : undefined), 15_000);
    expect(await etcd.get('leased/kept').string()).toBe('alive');
    expect(lost).toBe(0);
    const lease = await etcd.lease(2, { autoKeepAlive: false });
    await lease.put('leased/dropped').value('soon-gone');
    const leaseId = await lease.grant();
    const deletedAt = await within('the expiry of an unrenewed 2 s lease', waitForDelete(etcd, 'leased/dropped'), 15_000);
    expect(deletedAt).toBeGreaterThan(0);
    const ttl = await etcd.lease(60).grant().then(async (other) => {
      const raw = new CompatClient(store?.endpoint ?? 'none');
      try {
        return [await raw.leaseTimeToLive({ ID: leaseId }), await raw.leaseTimeToLive({ ID: other })];
      } finally {
        raw.close();
      }
    });
    expect(ttl[0]?.ok && ttl[0].value['TTL']).toBe('-1');
    expect(await etcd.get('leased/kept').string()).toBe('alive');
    await kept.revoke();
    expect(await etcd.get('leased/kept').string()).toBeNull();
  }, 60_000);

  it('lock: a second holder is refused until the first releases', async () => {
    const first = client();
    const second = client();
    const held = await within('first acquire', first.lock('jobs/nightly').ttl(10).acquire());
    await expect(second.lock('jobs/nightly').ttl(10).acquire()).rejects.toBeInstanceOf(EtcdLockFailedError);
    await held.release();
    const again = await within('second acquire', second.lock('jobs/nightly').ttl(10).acquire());
    expect(await again.leaseId()).not.toBeNull();
    await again.release();
    let inside = 0;
    let overlap = false;
    const runs = [first, second].map((etcd) => etcd.lock('jobs/do').ttl(10).do(async () => {
      inside++;
      if (inside > 1) overlap = true;
      await new Promise((resolve) => setTimeout(resolve, 50));
      inside--;
    }).catch((err: unknown) => (err instanceof EtcdLockFailedError ? 'refused' : Promise.reject(err))));
    const results = await within('two lock.do calls', Promise.all(runs));
    expect(overlap).toBe(false);
    expect(results.filter((result) => result === 'refused').length).toBeLessThanOrEqual(1);
  });

  it('election: campaign, observe, resign hands leadership to the next candidate', async () => {
    const alice = client();
    const bob = client();
    const observerClient = client();
    const aliceCampaign = alice.election('scheduler', 5).campaign('alice');
    await within('alice elected', aliceCampaign.wait());
    expect(await observerClient.election('scheduler').leader()).toBe('alice');
    const observer = await within('observe', observerClient.election('scheduler').observe());
    const changes: (string | undefined)[] = [];
    observer.on('change', (value) => changes.push(value));
    const bobCampaign = bob.election('scheduler', 5).campaign('bob');
    let bobElected = false;
    bobCampaign.on('elected', () => { bobElected = true; });
    await waitFor('bob queued', async () => {
      const keys = await observerClient.getAll().prefix('election/scheduler/').keys();
      return keys.length === 2 ? true : undefined;
    }, 10_000);
    expect(bobElected).toBe(false);
    await aliceCampaign.proclaim('alice-v2');
    await waitFor('observer sees the proclaimed value', () => (changes.includes('alice-v2') ? true : undefined), 10_000);
    await aliceCampaign.resign();
    await within('bob elected', bobCampaign.wait());
    await waitFor('observer sees bob', () => (changes.includes('bob') ? true : undefined), 10_000);
    expect(await observerClient.election('scheduler').leader()).toBe('bob');
    await bobCampaign.resign();
    await observer.cancel();
  }, 60_000);
});

async function waitForDelete(etcd: Etcd3, key: string): Promise<number> {
  const watcher = await etcd.watch().key(key).create();
  try {
    const present = await etcd.get(key).exec();
    if (present.kvs.length === 0) return Number(present.header.revision);
    return await new Promise<number>((resolve) => {
      watcher.on('delete', (kv) => resolve(Number(kv.mod_revision)));
    });
  } finally {
    await watcher.cancel();
  }
}
