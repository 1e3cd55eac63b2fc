// Maintenance details a client can observe beyond etcdctl's output:
// the Snapshot stream's framing, Status fields, a LeaseKeepAlive stream carrying several
// requests, and the plain-HTTP /health and /version answers on the client port.
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompatClient, bytes, child, int, text } from '../support/compat-client.js';
import { disposeStores, startReference, startSubject, subjectKind } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';

let reference: StoreProcess | undefined;
let subject: StoreProcess | undefined;

beforeAll(async () => {
  [reference, subject] = await Promise.all([startReference(), startSubject()]);
}, 60_000);

afterAll(async () => {
  await disposeStores(reference, subject);
});

function store(which: 'reference' | 'subject'): StoreProcess {
  const found = which === 'reference' ? reference : subject;
  if (found === undefined) throw new Error(`no ${which} store`);
  return found;
}

function httpGet(endpoint: string, path: string): Promise<{ status: number; body: string }> {
  const [host, port] = endpoint.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, method: 'GET', timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

describe(`maintenance details of the ${subjectKind()} store`, () => {
  it('Snapshot: 32 KiB chunks counting down, then the SHA-256 of the data; size % 512 == 32', async () => {
    const client = new CompatClient(store('subject').endpoint);
    try {
      for (let i = 0; i < 20; i++) expect((await client.put({ key: Buffer.from(`snap/${i}`), value: Buffer.alloc(4096, i) })).ok).toBe(true);
      const { messages, error } = await client.snapshot();
      expect(error).toBeNull();
      expect(messages.length).toBeGreaterThan(1);
      const blobs = messages.map((message) => bytes(message, 'blob'));
      const data = Buffer.concat(blobs.slice(0, -1));
      const digest = blobs[blobs.length - 1] ?? Buffer.alloc(0);
      expect(digest.equals(createHash('sha256').update(data).digest()), 'last message = SHA-256 of the data').toBe(true);
      expect(blobs.slice(0, -1).every((blob) => blob.length > 0 && blob.length <= 32 * 1024)).toBe(true);
      let remaining = data.length;
      const countdown = messages.slice(0, -1).map((message, index) => {
        remaining -= blobs[index]?.length ?? 0;
        return int(message, 'remaining_bytes') === remaining;
      });
      expect(countdown.every(Boolean), 'remaining_bytes counts down to 0').toBe(true);
      expect(int(messages[messages.length - 1], 'remaining_bytes')).toBe(0);
      expect((data.length + 32) % 512, 'etcdctl accepts only size % 512 == 32').toBe(32);
      expect(messages.every((message) => child(message, 'header') === null), 'no header on snapshot messages').toBe(true);
    } finally {
      client.close();
    }
  });

  it('Status: version 3.4.23, the member leads itself, indexes and sizes are consistent', async () => {
    const client = new CompatClient(store('subject').endpoint);
    try {
      const status = await client.status();
      expect(status.ok, JSON.stringify(status)).toBe(true);
      if (!status.ok) return;
      const value = status.value;
      expect(text(value, 'version')).toBe('3.4.23');
      expect(text(value, 'leader')).toBe(text(child(value, 'header'), 'member_id'));
      expect(int(value, 'raftAppliedIndex')).toBeLessThanOrEqual(int(value, 'raftIndex'));
      expect(int(value, 'raftIndex')).toBeGreaterThan(0);
      expect(int(value, 'dbSizeInUse')).toBeLessThanOrEqual(int(value, 'dbSize'));
      expect(value['isLearner']).toBe(false);
      expect(value['errors']).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('LeaseKeepAlive: one stream, one answer per request, granted TTL; unknown IDs get TTL 0', async () => {
    const answers = await Promise.all((['reference', 'subject'] as const).map(async (which) => {
      const client = new CompatClient(store(which).endpoint);
      const stream = client.keepAliveStream();
      try {
        expect((await client.leaseGrant({ ID: '31337', TTL: '90' })).ok).toBe(true);
        const seen: string[] = [];
        for (const id of ['31337', '404', '31337', '0']) {
          stream.send({ ID: id });
          const response = await stream.next(5_000);
          seen.push(`${text(response, 'ID')}:${text(response, 'TTL')}`);
        }
        expect(stream.hasEnded()).toBe(false);
        await client.leaseRevoke({ ID: '31337' });
        return seen;
      } finally {
        stream.end();
        client.close();
      }
    }));
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[0]).toEqual(['31337:90', '404:0', '31337:90', '0:0']);
  });

  it('GET /health and /version on the client port answer as etcd does', async () => {
    for (const path of ['/health', '/version']) {
      const [left, right] = await Promise.all([
        httpGet(store('reference').endpoint, path),
        httpGet(store('subject').endpoint, path).catch((err: unknown) => ({ status: -1, body: String(err) })),
      ]);
      expect({ path, ...right }).toEqual({ path, ...left });
    }
  });

  it('HashKV: the same hash as etcd 3.4 for the same history, before and after compactions', async () => {
    const hashes = async (store: StoreProcess, which: string): Promise<string[]> => {
      const client = new CompatClient(store.endpoint);
      const b = (name: string): Buffer => Buffer.from(`hashkv/${name}`);
      const ok = async (outcome: Promise<{ ok: boolean }>): Promise<void> => {
        expect((await outcome).ok, which).toBe(true);
      };
      const hashAt = async (revision: number): Promise<string> => {
        const outcome = await client.hashKv({ revision: String(revision) });
        if (!outcome.ok) throw new Error(`${which}: HashKV ${revision}: ${outcome.message}`);
        return `${revision}: ${text(outcome.value, 'hash')} compact ${int(outcome.value, 'compact_revision')}`;
      };
      try {
        // Revisions 2-7 on a fresh store; the lease has a fixed ID, as IDs are the server's choice.
        await ok(client.put({ key: b('a'), value: Buffer.from('1') }));
        await ok(client.put({ key: b('b'), value: Buffer.alloc(300, 7) }));
        await ok(client.put({ key: b('a'), value: Buffer.from('2') }));
        await ok(client.deleteRange({ key: b('b') }));
        await ok(client.leaseGrant({ TTL: '600', ID: '777001' }));
        await ok(client.put({ key: b('c'), value: Buffer.alloc(0), lease: '777001' }));
        await ok(client.txn({ compare: [], failure: [], success: [
          { request_put: { key: b('x'), value: Buffer.from('x') } },
          { request_put: { key: b('y'), value: Buffer.from('y') } },
          { request_delete_range: { key: b('a') } },
        ] }));
        const out: string[] = [];
        for (let rev = 1; rev <= 7; rev++) out.push(await hashAt(rev));
        await ok(client.compact({ revision: '6' }));
        await ok(client.put({ key: b('d'), value: Buffer.from('d') }));
        out.push(await hashAt(0), await hashAt(7), await hashAt(8));
        await ok(client.compact({ revision: '8' }));
        out.push(await hashAt(0));
        return out;
      } finally {
        client.close();
      }
    };
    const [freshReference, freshSubject] = await Promise.all([startReference(), startSubject()]);
    try {
      const [expected, actual] = await Promise.all([
        hashes(freshReference, 'etcd'), hashes(freshSubject, subjectKind()),
      ]);
      expect(actual).toEqual(expected);
    } finally {
      await disposeStores(freshReference, freshSubject);
    }
  });

  it('Compact with physical answers once the compacted rows are gone: dbSizeInUse has dropped', async () => {
    // Enough keys that removing them takes many of etcron's compaction steps (1,000 keys each).
    const keys = 16_000;
    const putsPerTxn = 128;
    const value = Buffer.alloc(1_000, 0x70);
    const inUse = async (client: CompatClient): Promise<number> => {
      const status = await client.status();
      if (!status.ok) throw new Error(status.message);
      return int(status.value, 'dbSizeInUse');
    };
    const run = async (store: StoreProcess, which: string): Promise<{ before: number; after: number }> => {
      const client = new CompatClient(store.endpoint);
      try {
        const keyOf = (n: number): Buffer => Buffer.from(`physical/${String(n).padStart(6, '0')}`);
        for (let first = 0; first < keys; first += putsPerTxn) {
          const success = Array.from({ length: putsPerTxn }, (_, i) => ({
            request_put: { key: keyOf(first + i), value },
          }));
          expect((await client.txn({ success })).ok, `${which}: load`).toBe(true);
        }
        const deleted = await client.deleteRange({ key: keyOf(0), range_end: Buffer.from('physical0') });
        if (!deleted.ok) throw new Error(`${which}: delete: ${deleted.message}`);
        const before = await inUse(client);
        const revision = text(child(deleted.value, 'header'), 'revision');
        expect((await client.compact({ revision, physical: true })).ok, `${which}: compact`).toBe(true);
        return { before, after: await inUse(client) };
      } finally {
        client.close();
      }
    };
    const [fromReference, fromSubject] = await Promise.all([
      run(store('reference'), 'etcd'), run(store('subject'), subjectKind()),
    ]);
    for (const [which, { before, after }] of [['etcd', fromReference], ['subject', fromSubject]] as const) {
      expect(after, `${which}: dbSizeInUse ${before} before the compaction, ${after} after`)
        .toBeLessThan(before / 2);
    }
  }, 120_000);
});
