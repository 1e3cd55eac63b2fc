import { ProtoWriter } from '../wire/proto-writer.js';
import { crc32c } from '../wire/crc32c.js';
import type { KvRow } from './backend.js';

/**
 * etcd 3.4's HashKV, computed from our rows: CRC-32C over the bucket name "key", then, in revision
 * order, each row's bbolt key (8-byte big-endian main revision, "_", 8-byte sub revision, and "t"
 * for a tombstone) and value (the marshalled mvccpb.KeyValue; a tombstone's holds only the key).
 * Rows at or below the compaction point count only if they are their key's newest revision up
 * to `upToRevision` and not a tombstone (etcd's kvindex.Keep(rev), taken at the hashed revision,
 * not at the compaction point), unless no key has such a revision. Members with the same history
 * agree, and so does etcd 3.4 for the same operations.
 */
export function hashKeyValues(
  rows: () => Iterable<KvRow>, upToRevision: number, compactRevision: number,
): number {
  const newest = new Map<string, KvRow>();
  for (const row of rows()) {
    if (row.main > upToRevision) break;
    newest.set(row.key.toString('latin1'), row);
  }
  let keptCount = 0;
  for (const row of newest.values()) if (!row.tombstone) keptCount++;
  let hash = crc32c(Buffer.from('key'));
  for (const row of rows()) {
    if (row.main > upToRevision) break;
    if (row.main <= compactRevision && keptCount > 0) {
      const kept = newest.get(row.key.toString('latin1'));
      if (kept === undefined || kept.tombstone || kept.main !== row.main || kept.sub !== row.sub) continue;
    }
    hash = crc32c(revisionKey(row), hash);
    hash = crc32c(keyValueBytes(row), hash);
  }
  return hash;
}

export function revisionKey(row: Pick<KvRow, 'main' | 'sub' | 'tombstone'>): Buffer {
  const bytes = Buffer.alloc(row.tombstone ? 18 : 17);
  bytes.writeBigUInt64BE(BigInt(row.main), 0);
  bytes[8] = 0x5f;
  bytes.writeBigUInt64BE(BigInt(row.sub), 9);
  if (row.tombstone) bytes[17] = 0x74;
  return bytes;
}

export function keyValueBytes(row: KvRow): Buffer {
  const out = new ProtoWriter();
  out.bytesField(1, row.key);
  if (!row.tombstone) {
    out.uintField(2, row.createRevision);
    out.uintField(3, row.main);
    out.uintField(4, row.version);
    out.bytesField(5, row.value ?? Buffer.alloc(0));
    out.uintField(6, row.lease);
  }
  return out.finish();
}
