import { ProtoWriter } from '../wire/proto-writer.js';
import type { KvRow } from '../mvcc/backend.js';
import { revisionKey, keyValueBytes } from '../mvcc/kv-hash.js';
import { writeBoltDatabase, type BoltBucket } from './bbolt-writer.js';

/**
 * A snapshot in etcd 3.4's own format: the bbolt file an etcd member keeps as member/snap/db, so
 * `etcdctl snapshot status` reads it and `etcdctl snapshot restore` turns it into the data dir of
 * a real etcd (the way off the bundled store). Buckets and encodings as etcd 3.4 writes them:
 *
 * - `key`: the MVCC history. bbolt key = 8-byte big-endian main revision, "_", 8-byte sub
 *   revision (+ "t" for a tombstone); value = the marshalled mvccpb.KeyValue. Below the compaction
 *   point only what etcd's compaction keeps: each key's newest revision, unless a tombstone.
 * - `meta`: consistent_index (the applied Raft index) and, after a compaction, its revision as
 *   scheduledCompactRev and finishedCompactRev.
 * - `lease`: 8-byte big-endian id → marshalled leasepb.Lease {ID, TTL}.
 * - `cluster`: clusterVersion. `members`, `members_removed`: empty (restore writes the new ones).
 * - `auth*`: auth switched off and no users or roles. etcd hashes passwords with bcrypt and we
 *   with scrypt, so users cannot carry over; set auth up again after a restore.
 */
export interface SnapshotSource {
  /** Every MVCC row up to one revision, in (main, sub) order; called twice. */
  readonly rows: () => AsyncIterable<KvRow>;
  readonly compactRevision: number;
  readonly leases: readonly { readonly id: bigint; readonly ttl: number }[];
  readonly appliedIndex: number;
}

const CLUSTER_VERSION = '3.4.0';

function uint64BE(value: bigint | number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt.asUintN(64, BigInt(value)));
  return bytes;
}

/** Rows etcd would still have after compacting at `compactRevision`. */
async function* keptRows(source: SnapshotSource): AsyncGenerator<KvRow> {
  const newestAtCompaction = new Map<string, { main: number; sub: number; tombstone: boolean }>();
  if (source.compactRevision > 0) {
    for await (const row of source.rows()) {
      if (row.main > source.compactRevision) break;
      newestAtCompaction.set(row.key.toString('latin1'), { main: row.main, sub: row.sub, tombstone: row.tombstone });
    }
  }
  for await (const row of source.rows()) {
    if (row.main <= source.compactRevision) {
      const kept = newestAtCompaction.get(row.key.toString('latin1'));
      if (kept === undefined || kept.tombstone || kept.main !== row.main || kept.sub !== row.sub) continue;
    }
    yield row;
  }
}

function leaseValue(id: bigint, ttl: number): Buffer {
  const out = new ProtoWriter();
  out.uintField(1, id);
  out.uintField(2, BigInt(ttl));
  return out.finish();
}

export function etcdSnapshotBuckets(source: SnapshotSource): BoltBucket[] {
  const empty: readonly (readonly [Buffer, Buffer])[] = [];
  const meta: (readonly [Buffer, Buffer])[] = [[Buffer.from('consistent_index'), uint64BE(source.appliedIndex)]];
  if (source.compactRevision > 0) {
    const compacted = revisionKey({ main: source.compactRevision, sub: 0, tombstone: false });
    meta.push([Buffer.from('finishedCompactRev'), compacted], [Buffer.from('scheduledCompactRev'), compacted]);
  }
  const leases = [...source.leases].sort((a, b) => (BigInt.asUintN(64, a.id) < BigInt.asUintN(64, b.id) ? -1 : 1));
  return [
    { name: Buffer.from('alarm'), entries: empty },
    { name: Buffer.from('auth'), entries: [[Buffer.from('authEnabled'), Buffer.from([0])], [Buffer.from('authRevision'), uint64BE(0)]] },
    { name: Buffer.from('authRoles'), entries: empty },
    { name: Buffer.from('authUsers'), entries: empty },
    { name: Buffer.from('cluster'), entries: [[Buffer.from('clusterVersion'), Buffer.from(CLUSTER_VERSION)]] },
    {
      name: Buffer.from('key'),
      entries: (async function* (): AsyncGenerator<readonly [Buffer, Buffer]> {
        for await (const row of keptRows(source)) yield [revisionKey(row), keyValueBytes(row)];
      })(),
    },
    { name: Buffer.from('lease'), entries: leases.map((l) => [uint64BE(l.id), leaseValue(l.id, l.ttl)] as const) },
    { name: Buffer.from('members'), entries: empty },
    { name: Buffer.from('members_removed'), entries: empty },
    { name: Buffer.from('meta'), entries: meta },
  ];
}

/** The snapshot file: the bbolt database, as chunks in order. */
export function writeEtcdSnapshot(source: SnapshotSource): Promise<Buffer[]> {
  return writeBoltDatabase(etcdSnapshotBuckets(source));
}
