import { ProtoWriter } from '../wire/proto-writer.js';
import { crc32c } from '../wire/crc32c.js';
import type { KvRow, RowHead } from './backend.js';

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
  const hash = new KeyValueHash(upToRevision, compactRevision);
  for (const row of rows()) if (!hash.note(row)) break;
  for (const row of rows()) if (!hash.add(row)) break;
  return hash.value;
}

/**
 * hashKeyValues over rows read a page at a time (the event loop runs between pages); the first
 * pass needs only where each key's revisions are (`heads`), not the values.
 */
export async function hashKeyValuesInSteps(
  heads: () => AsyncIterable<RowHead>, rows: () => AsyncIterable<KvRow>, upToRevision: number, compactRevision: number,
): Promise<number> {
  const hash = new KeyValueHash(upToRevision, compactRevision);
  for await (const head of heads()) if (!hash.note(head)) break;
  for await (const row of rows()) if (!hash.add(row)) break;
  return hash.value;
}

/** The two passes of the hash: note() every row first, then add() every row, both in revision order. */
class KeyValueHash {
  /** Each key's newest row up to the hashed revision. */
  private readonly newest = new Map<string, { main: number; sub: number; tombstone: boolean }>();
  private keptCount = -1;
  private hash = crc32c(Buffer.from('key'));

  constructor(private readonly upToRevision: number, private readonly compactRevision: number) {}

  /** First pass; false once past the hashed revision. */
  note(row: RowHead): boolean {
    if (row.main > this.upToRevision) return false;
    this.newest.set(row.key.toString('latin1'), { main: row.main, sub: row.sub, tombstone: row.tombstone });
    return true;
  }

  /** Second pass; false once past the hashed revision. */
  add(row: KvRow): boolean {
    if (row.main > this.upToRevision) return false;
    if (this.keptCount < 0) {
      this.keptCount = 0;
      for (const kept of this.newest.values()) if (!kept.tombstone) this.keptCount++;
    }
    if (row.main <= this.compactRevision && this.keptCount > 0) {
      const kept = this.newest.get(row.key.toString('latin1'));
      if (kept === undefined || kept.tombstone || kept.main !== row.main || kept.sub !== row.sub) return true;
    }
    this.hash = crc32c(revisionKey(row), this.hash);
    this.hash = crc32c(keyValueBytes(row), this.hash);
    return true;
  }

  get value(): number {
    return this.hash;
  }
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
