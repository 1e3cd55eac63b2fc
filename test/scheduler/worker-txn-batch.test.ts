import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { clientFor, dropFirstTxnReply, putJob } from '../support/scheduler-fixtures.js';
import { claimRun, writeFenced, type ClaimResult, type Claimed } from '../../worker/claimer/claim.js';
import { TxnBatcher } from '../../worker/claimer/txn-batcher.js';
import { decodeRunRecord, type RunRecord } from '../../shared/history/records.js';
import type { JobSpec } from '../../shared/job/spec.js';

/**
 * Claims and finish writes of one event-loop turn share txns (worker/claimer/txn-batcher.ts). On the
 * store under test: a batch wins as a whole, an item another worker took fails only itself, two
 * slots of one job never share a fence, a lost reply is settled by each claim's nonce, and a
 * fenced finish fails alone.
 */
describe.skipIf(!hasStoreUnderTest())('claims and fenced writes in shared txns', () => {
  let store: StoreProcess;
  let client: Etcd3;
  let leaseId: string;
  const specs: JobSpec[] = [];
  const SLOT_MS = Date.parse('2026-01-01T00:00:00Z');

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
    leaseId = (await client.leaseClient.leaseGrant({ TTL: 60 })).ID;
    for (let i = 0; i < 100; i++) specs.push(await putJob(client, { name: `b${i}`, schedule: '* * * * * *', command: 'true' }));
  });

  afterAll(async () => {
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  const request = (spec: JobSpec, slotMs: number, worker = 'w1'): Parameters<typeof claimRun>[1] =>
    ({ spec, slotMs, worker, leaseId, attempt: 1, catchUp: false, nowMs: Date.now() });
  const won = (results: readonly ClaimResult[]): Claimed[] => results.filter((r): r is Claimed => r.ok);
  const readRecord = async (key: string): Promise<RunRecord | undefined> => {
    const kv = (await client.kv.range({ key: Buffer.from(key) })).kvs[0];
    return kv === undefined ? undefined : decodeRunRecord(kv.value.toString());
  };

  it('sends the claims of one turn as few txns within the op limit, each claim won with a fence', async () => {
    const batcher = new TxnBatcher(client);
    const results = await Promise.all(specs.map((spec) => claimRun(client, request(spec, SLOT_MS), batcher)));
    expect(won(results)).toHaveLength(100);
    // Two puts per claim, at most 128 ops: 64 claims per txn.
    expect(batcher.stats()).toEqual({ submitted: 100, txns: 2, items: 100, failedBatches: 0 });
    for (const claim of won(results)) {
      const lock = (await client.kv.range({ key: Buffer.from(claim.lockKey) })).kvs[0];
      expect(Number(lock?.create_revision)).toBe(claim.fence);
      expect((await readRecord(claim.runKey))?.nonce).toBe(claim.record.nonce);
    }
  });

  it('fails only the claim another worker took; the rest win; two slots of one job get two fences', async () => {
    const slotMs = SLOT_MS + 1_000;
    const rival = await claimRun(client, request(specs[5]!, slotMs, 'w2'));
    expect(rival.ok).toBe(true);
    const batcher = new TxnBatcher(client);
    const results = await Promise.all([
      ...specs.slice(0, 10).map((spec) => claimRun(client, request(spec, slotMs), batcher)),
      claimRun(client, request(specs[0]!, slotMs + 1_000), batcher),
    ]);
    expect(results[5]).toMatchObject({ ok: false, reason: 'taken', existing: { worker: 'w2' } });
    expect(won(results)).toHaveLength(10);
    const [first, later] = [results[0], results[10]];
    expect(first?.ok && later?.ok && first.fence !== later.fence).toBe(true);
    // The nine free claims went again in one txn: 10 + 1 (the job's second slot) + 9 items.
    expect(batcher.stats()).toEqual({ submitted: 11, txns: 3, items: 20, failedBatches: 1 });
  });

  it('settles a batch whose reply was lost by each claim\'s nonce, never reporting its own claim taken', async () => {
    const slotMs = SLOT_MS + 5_000;
    const lossy = dropFirstTxnReply(client);
    const batcher = new TxnBatcher(lossy);
    const results = await Promise.all(specs.slice(0, 8).map((spec) => claimRun(lossy, request(spec, slotMs), batcher)));
    expect(results.every((r) => r.ok && r.recovered)).toBe(true);
  });

  it('fails a fenced finish alone and writes the others, releasing their locks', async () => {
    const slotMs = SLOT_MS + 10_000;
    const claims = won(await Promise.all(specs.slice(0, 6).map((spec) => claimRun(client, request(spec, slotMs)))));
    expect(claims).toHaveLength(6);
    // The third run was killed: its lock is gone, so its finish must not be written.
    await client.kv.deleteRange({ key: Buffer.from(claims[2]!.lockKey) });
    const batcher = new TxnBatcher(client);
    const results = await Promise.all(claims.map((c) => writeFenced(client, c, { ...c.record, state: 'succeeded', endedAtMs: Date.now() }, true, undefined, batcher)));
    expect(results.map((r) => r.ok)).toEqual([true, true, false, true, true, true]);
    expect(results[2]).toMatchObject({ ok: false, reason: 'fenced' });
    for (const [i, c] of claims.entries()) {
      expect((await readRecord(c.runKey))?.state).toBe(i === 2 ? 'claimed' : 'succeeded');
      if (i !== 2) expect((await client.kv.range({ key: Buffer.from(c.lockKey) })).kvs).toHaveLength(0);
    }
    // The five that would have passed went again together.
    expect(batcher.stats()).toEqual({ submitted: 6, txns: 2, items: 11, failedBatches: 1 });
  });
});
