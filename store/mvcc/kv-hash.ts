import { assert } from '../../shared/assert.js';
import { ProtoWriter } from '../wire/proto-writer.js';
import { crc32c } from '../wire/crc32c.js';
import type { KvRow } from './backend.js';
import { PackedScan, RECORD, type PackedRowSource, type PackedRows } from './packed-rows.js';

/**
 * etcd 3.4's HashKV, computed from our rows: CRC-32C over the bucket name "key", then, in revision
 * order, each row's bbolt key (8-byte big-endian main revision, "_", 8-byte sub revision, and "t"
 * for a tombstone) and value (the marshalled mvccpb.KeyValue; a tombstone's holds only the key).
 * Rows at or below the compaction point count only if they are their key's newest revision up
 * to `upToRevision` and not a tombstone (etcd's kvindex.Keep(rev), taken at the hashed revision,
 * not at the compaction point), unless no key has such a revision. Members with the same history
 * agree, and so does etcd 3.4 for the same operations.
 *
 * The rows come packed by SQLite (packed-rows.ts), and the KeyValue bytes are hashed as they are
 * written, piece by piece, straight from the packed rows: the values are never copied.
 */
export function hashKeyValues(
  source: PackedRowSource, upToRevision: number, compactRevision: number,
): number {
  const hash = new KeyValueHash(upToRevision, compactRevision);
  if (hash.needsNewest) {
    const heads = new PackedScan(source, upToRevision, false);
    for (let rows = heads.next(); rows !== null; rows = heads.next()) hash.note(rows);
  }
  const scan = new PackedScan(source, upToRevision, true);
  for (let rows = scan.next(); rows !== null; rows = scan.next()) hash.add(rows);
  return hash.value;
}

/**
 * hashKeyValues over runs of rows read in steps (the event loop runs between them): `scan(false)`
 * gives the rows without their values (where each key's revisions are), `scan(true)` with them.
 */
export async function hashKeyValuesInSteps(
  scan: (withValues: boolean) => AsyncIterable<PackedRows>,
  upToRevision: number,
  compactRevision: number,
): Promise<number> {
  const hash = new KeyValueHash(upToRevision, compactRevision);
  if (hash.needsNewest) for await (const rows of scan(false)) hash.note(rows);
  for await (const rows of scan(true)) hash.add(rows);
  return hash.value;
}

/**
 * The two passes of the hash: note() every row first (if needed), then add() every row. Both see
 * the same rows in the same order (the rows of one state), so the first pass can tell the second
 * which rows at or below the compaction point count by their place in that order.
 */
class KeyValueHash {
  /** Each key's newest row up to the hashed revision: its place, times 2, plus 1 if a tombstone. */
  private readonly newest = new Map<string, number>();
  /** Rows the first pass saw, and those of them at or below the compaction point. */
  private notedRows = 0;
  private notedRowsCompacted = 0;
  /** Whether each row at or below the compaction point counts; null until the second pass. */
  private kept: Uint8Array | null = null;
  private keptCount = 0;
  private addedRows = 0;
  private hash = crc32c(Buffer.from('key'));
  /** The KeyValue's field tags and varints between the key and value bytes. */
  private readonly scratch = Buffer.alloc(64);

  constructor(private readonly upToRevision: number, private readonly compactRevision: number) {}

  /** Whether the first pass matters: revisions start at 1, so no row is at revision 0 or below. */
  get needsNewest(): boolean {
    return this.compactRevision > 0;
  }

  /** First pass, over rows up to the hashed revision in revision order. */
  note(rows: PackedRows): void {
    while (rows.next()) {
      const main = rows.main;
      if (main > this.upToRevision) return;
      if (main <= this.compactRevision) this.notedRowsCompacted++;
      this.newest.set(rows.keyString(), this.notedRows * 2 + (rows.tombstone ? 1 : 0));
      this.notedRows++;
    }
  }

  /** Second pass, over rows up to the hashed revision in revision order. */
  add(rows: PackedRows): void {
    const kept = this.kept ?? this.keptRows();
    while (rows.next()) {
      const main = rows.main;
      if (main > this.upToRevision) return;
      const place = this.addedRows++;
      if (main <= this.compactRevision && this.keptCount > 0 && kept[place] !== 1) continue;
      this.addRow(rows);
    }
  }

  /**
   * Marks the rows at or below the compaction point that are their key's newest up to the
   * hashed revision and not a tombstone (etcd's kvindex.Keep); they come first in revision order.
   */
  private keptRows(): Uint8Array {
    const kept = new Uint8Array(this.notedRowsCompacted);
    for (const newest of this.newest.values()) {
      if (newest % 2 === 1) continue;
      this.keptCount++;
      const place = newest / 2;
      if (place < kept.length) kept[place] = 1;
    }
    this.kept = kept;
    return kept;
  }

  /** The row's bbolt key and its KeyValue's bytes, as keyValueBytes writes them. */
  private addRow(rows: PackedRows): void {
    const { bytes, at } = rows;
    const out = this.scratch;
    const tombstone = rows.tombstone;
    const keyStart = rows.keyStart;
    const keyEnd = rows.keyEnd;
    let hash = crc32c(bytes, this.hash, at, at + RECORD.revisionKeyEnd);
    let used = 0;
    if (tombstone) out[used++] = 0x74; // "t", the end of a tombstone's bbolt key
    used = lengthPrefix(out, used, 1, keyEnd - keyStart);
    hash = crc32c(bytes, crc32c(out, hash, 0, used), keyStart, keyEnd);
    if (!tombstone) {
      const valueEnd = rows.valueEnd;
      used = varintField(out, 0, 2, bytes, at + RECORD.createRevision);
      used = varintField(out, used, 3, bytes, at + RECORD.main);
      used = varintField(out, used, 4, bytes, at + RECORD.version);
      used = lengthPrefix(out, used, 5, valueEnd - keyEnd);
      hash = crc32c(bytes, crc32c(out, hash, 0, used), keyEnd, valueEnd);
      used = varintField(out, 0, 6, bytes, at + RECORD.lease);
      hash = crc32c(out, hash, 0, used);
    }
    this.hash = hash;
  }

  get value(): number {
    assert(!this.needsNewest || this.addedRows === this.notedRows,
      `the hash's passes saw ${this.notedRows} and ${this.addedRows} rows`);
    return this.hash;
  }
}

/** A bytes field's tag and length (proto3: an empty one is left out, its bytes too). */
function lengthPrefix(out: Buffer, used: number, field: number, length: number): number {
  if (length === 0) return used;
  out[used] = field * 8 + 2;
  return writeVarint(out, used + 1, 0, length);
}

/** A varint field holding the 64-bit big-endian integer at bytes[at] (left out when zero). */
function varintField(out: Buffer, used: number, field: number, bytes: Buffer, at: number): number {
  const high = bytes.readUInt32BE(at);
  const low = bytes.readUInt32BE(at + 4);
  if (high === 0 && low === 0) return used;
  out[used] = field * 8;
  return writeVarint(out, used + 1, high, low);
}

/** The varint of high * 2^32 + low (an int64's two's complement for a negative one, as Go). */
function writeVarint(out: Buffer, used: number, high: number, low: number): number {
  let at = used;
  let rest = high;
  let bits = low;
  while (rest !== 0 || bits > 0x7f) {
    out[at++] = (bits & 0x7f) | 0x80;
    bits = ((bits >>> 7) | (rest << 25)) >>> 0;
    rest >>>= 7;
  }
  out[at++] = bits;
  return at;
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
