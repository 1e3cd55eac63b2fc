import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backend, type KvRow } from '../mvcc/backend.js';
import { protoFields } from '../wire/proto-reader.js';
import { readBoltBuckets } from './bbolt-reader.js';

/**
 * `etcron snapshot restore`: a new data dir from a snapshot in etcd 3.4's format, written by
 * etcron or by etcd (the way onto the bundled store as well as off it). Like etcdctl's restore,
 * it keeps the keyspace (history after the compaction point, leases) and starts a new cluster:
 * the member's log is empty and its membership comes from the flags it is started with. Auth
 * settings are not carried (etcd's bcrypt hashes are not ours).
 */
export class SnapshotRestoreError extends Error {
  override readonly name = 'SnapshotRestoreError';
}

const SHA256_BYTES = 32;

export interface RestoreSummary {
  readonly revision: number;
  readonly compactRevision: number;
  readonly rows: number;
  readonly leases: number;
}

/** The database bytes, after checking the sha256 etcd appends to a snapshot it sends. */
export function snapshotDatabase(file: Buffer, skipHashCheck: boolean): Buffer {
  const hasHash = file.length % 512 === SHA256_BYTES;
  if (!hasHash) {
    if (!skipHashCheck) throw new SnapshotRestoreError('snapshot missing hash but --skip-hash-check=false');
    return file;
  }
  const db = file.subarray(0, file.length - SHA256_BYTES);
  const expected = file.subarray(file.length - SHA256_BYTES);
  const actual = createHash('sha256').update(db).digest();
  if (!skipHashCheck && !actual.equals(expected)) {
    throw new SnapshotRestoreError(`expected sha256 ${expected.toString('hex')}, got ${actual.toString('hex')}`);
  }
  return db;
}

function kvRow(revisionKey: Buffer, value: Buffer): KvRow {
  if (revisionKey.length !== 17 && revisionKey.length !== 18) throw new SnapshotRestoreError('malformed revision key in the key bucket');
  const fields = { key: Buffer.alloc(0), value: null as Buffer | null, createRevision: 0, version: 0, lease: 0n };
  for (const f of protoFields(value)) {
    if ('bytes' in f && f.field === 1) fields.key = Buffer.from(f.bytes);
    else if ('bytes' in f && f.field === 5) fields.value = Buffer.from(f.bytes);
    else if ('varint' in f && f.field === 2) fields.createRevision = Number(f.varint);
    else if ('varint' in f && f.field === 4) fields.version = Number(f.varint);
    else if ('varint' in f && f.field === 6) fields.lease = BigInt.asIntN(64, f.varint);
  }
  const tombstone = revisionKey.length === 18 && revisionKey[17] === 0x74;
  return {
    main: Number(revisionKey.readBigUInt64BE(0)), sub: Number(revisionKey.readBigUInt64BE(9)), key: fields.key,
    value: tombstone ? null : (fields.value ?? Buffer.alloc(0)), createRevision: fields.createRevision,
    version: fields.version, lease: fields.lease, tombstone,
  };
}

function lease(value: Buffer): { id: bigint; ttl: number } {
  let id = 0n;
  let ttl = 0;
  for (const f of protoFields(value)) {
    if ('varint' in f && f.field === 1) id = BigInt.asIntN(64, f.varint);
    else if ('varint' in f && f.field === 2) ttl = Number(BigInt.asIntN(64, f.varint));
  }
  return { id, ttl };
}

export function restoreSnapshot(snapshotPath: string, dataDir: string, options: { readonly skipHashCheck?: boolean } = {}): RestoreSummary {
  const memberDir = join(dataDir, 'member');
  if (existsSync(memberDir)) throw new SnapshotRestoreError(`data-dir "${dataDir}" exists`);
  const buckets = readBoltBuckets(snapshotDatabase(readFileSync(snapshotPath), options.skipHashCheck === true));
  const keys = buckets.get('key');
  if (keys === undefined) throw new SnapshotRestoreError('not an etcd snapshot: no "key" bucket');
  const finished = buckets.get('meta')?.find(([name]) => name.toString() === 'finishedCompactRev')?.[1];
  const compactRevision = finished === undefined || finished.length < 8 ? 0 : Number(finished.readBigUInt64BE(0));
  const leases = (buckets.get('lease') ?? []).map(([, value]) => lease(value));
  mkdirSync(memberDir, { recursive: true, mode: 0o700 });
  const backend = new Backend(join(memberDir, 'etcron.db'));
  let revision = Math.max(1, compactRevision);
  try {
    backend.transaction(() => {
      for (const [revisionKey, value] of keys) {
        const row = kvRow(revisionKey, value);
        backend.insertKv(row);
        revision = Math.max(revision, row.main);
      }
      for (const l of leases) backend.putLease(l.id, l.ttl);
      if (compactRevision > 0) backend.setMeta('compact_rev', compactRevision);
      backend.setMeta('current_rev', revision);
    });
  } finally {
    backend.close();
  }
  return { revision, compactRevision, rows: keys.length, leases: leases.length };
}
