import { assert } from '../../shared/assert.js';

/**
 * Rows of the kv table read for hashing as one buffer per page, built by SQLite (group_concat):
 * turning each row into JS values (a Buffer per value, an object per row) cost more than the hash
 * itself. Each record, integers big-endian:
 *
 *   0  main (8)   8  "_"   9  sub (8)   17  flags (1)   18  key length (4)   22  value length (4)
 *   with values: 26  create revision (8)   34  version (8)   42  lease (8, the int64's bits)
 *   then the key's bytes and the value's (a scan without values has none, and length 0)
 *
 * so bytes 0 to 17 are the row's bbolt key as etcd stores it (its tombstone mark aside). Flag 1 is
 * a tombstone; flag 2 marks a record whose key and value were left out (too large to inline).
 */
export const RECORD = {
  main: 0,
  sub: 9,
  revisionKeyEnd: 17,
  flags: 17,
  keyLength: 18,
  valueLength: 22,
  createRevision: 26,
  version: 34,
  lease: 42,
  /** The fixed part's size without values, and with them. */
  headBytes: 26,
  fullBytes: 50,
} as const;

const FLAG_TOMBSTONE = 1;
const FLAG_LEFT_OUT = 2;

/** Rows per page at most and at least; the count in between aims at PAGE_BYTES_TARGET. */
const PAGE_ROWS_MAX = 1024;
const PAGE_ROWS_MIN = 16;
const PAGE_BYTES_TARGET = 1024 * 1024;
/** A row with more key and value bytes than this is read on its own (a page stays small). */
export const INLINE_BYTES_MAX = 16 * 1024;

/**
 * The page query: rows after (@afterMain, @afterSub) up to @upTo, at most @rows, each packed as
 * above; rows whose key and value bytes exceed @inlineMax come as a fixed part with flag 2.
 */
export function packedPageSql(withValues: boolean): string {
  const valueLength = withValues ? 'ifnull(octet_length(value), 0)' : '0';
  const size = `octet_length(key) + ${valueLength}`;
  const [format, fields] = withValues
    ? ['%016x%016x%016x', ', create_rev, version, lease']
    : ['', ''];
  const fixed = `unhex(printf('%016x5f%016x%02x%08x%08x${format}', main, sub,
    (tombstone != 0) + 2 * (${size} > @inlineMax), octet_length(key), ${valueLength}${fields}))`;
  const bytes = withValues ? `key || ifnull(value, x'')` : 'key';
  // The subquery hands its rows to the aggregate in its order; PackedScan checks that it did.
  return `SELECT CAST(group_concat(record, x'') AS BLOB) FROM (
    SELECT ${fixed} || CASE WHEN ${size} > @inlineMax THEN x'' ELSE ${bytes} END AS record
    FROM kv WHERE (main, sub) > (@afterMain, @afterSub) AND main <= @upTo
    ORDER BY main, sub LIMIT @rows)`;
}

export interface RevisionPosition {
  readonly main: number;
  readonly sub: number;
}

/** What the page query takes, and a page it gives. */
export interface PackedPageRequest {
  readonly after: RevisionPosition;
  readonly upTo: number;
  readonly rows: number;
  readonly withValues: boolean;
  readonly inlineMax: number;
}

/** Where PackedScan reads from (the Backend). */
export interface PackedRowSource {
  /** The page query's result (see packedPageSql); empty when no row is left. */
  packedRows(request: PackedPageRequest): Buffer;
}

function readU64(bytes: Buffer, at: number): number {
  return (bytes.readUInt32BE(at) * 0x1_0000_0000) + bytes.readUInt32BE(at + 4);
}

function isLeftOut(bytes: Buffer, at: number): boolean {
  return ((bytes[at + RECORD.flags] as number) & FLAG_LEFT_OUT) !== 0;
}

/** The offset after the record at `at` (a left-out record is its fixed part alone). */
function recordEnd(bytes: Buffer, at: number, fixedBytes: number): number {
  const end = at + fixedBytes;
  if (isLeftOut(bytes, at)) return end;
  const keyLength = bytes.readUInt32BE(at + RECORD.keyLength);
  return end + keyLength + bytes.readUInt32BE(at + RECORD.valueLength);
}

/** A cursor over packed records, every one with its key (and value, if read) inline. */
export class PackedRows {
  /** Offset of the current record; -1 before the first next(). */
  at = -1;
  private nextAt = 0;

  /** `fixedBytes`: RECORD.fullBytes for rows read with their values, RECORD.headBytes without. */
  constructor(readonly bytes: Buffer, private readonly fixedBytes: number) {}

  /** Moves to the next record; false after the last. */
  next(): boolean {
    if (this.nextAt >= this.bytes.length) return false;
    this.at = this.nextAt;
    assert(!isLeftOut(this.bytes, this.at), 'a packed record without its bytes');
    this.nextAt = this.valueEnd;
    return true;
  }

  get main(): number {
    return readU64(this.bytes, this.at + RECORD.main);
  }

  get sub(): number {
    return readU64(this.bytes, this.at + RECORD.sub);
  }

  get tombstone(): boolean {
    return ((this.bytes[this.at + RECORD.flags] as number) & FLAG_TOMBSTONE) !== 0;
  }

  get keyStart(): number {
    return this.at + this.fixedBytes;
  }

  get keyEnd(): number {
    return this.keyStart + this.bytes.readUInt32BE(this.at + RECORD.keyLength);
  }

  get valueEnd(): number {
    return this.keyEnd + this.bytes.readUInt32BE(this.at + RECORD.valueLength);
  }

  /** The key as a latin1 string (one character per byte): a Map key. */
  keyString(): string {
    return this.bytes.toString('latin1', this.keyStart, this.keyEnd);
  }
}

/**
 * Every row up to `upTo` in revision order, handed out a run of records at a time: a page's
 * records up to the next one left out, or that one row read on its own. The page's row count
 * follows the bytes per row of the last page, so a page holds about PAGE_BYTES_TARGET.
 */
export class PackedScan {
  private after: RevisionPosition = { main: -1, sub: -1 };
  private page: Buffer = Buffer.alloc(0);
  private at = 0;
  private rowsPerPage = PAGE_ROWS_MIN;
  private readonly fixedBytes: number;

  constructor(
    private readonly source: PackedRowSource,
    private readonly upTo: number,
    private readonly withValues: boolean,
  ) {
    this.fixedBytes = withValues ? RECORD.fullBytes : RECORD.headBytes;
  }

  /** The next records, or null after the last row. */
  next(): PackedRows | null {
    if (this.at >= this.page.length) {
      this.page = this.read(this.after, this.rowsPerPage, INLINE_BYTES_MAX);
      this.at = 0;
      if (this.page.length === 0) return null;
      const rows = this.checkPage(this.page);
      const rowsForTarget = Math.floor(PAGE_BYTES_TARGET * rows / this.page.length);
      this.rowsPerPage = Math.min(PAGE_ROWS_MAX, Math.max(PAGE_ROWS_MIN, rowsForTarget));
    }
    if (isLeftOut(this.page, this.at)) return this.readLeftOut();
    const start = this.at;
    let last = start;
    let end = start;
    while (end < this.page.length && !isLeftOut(this.page, end)) {
      last = end;
      end = recordEnd(this.page, end, this.fixedBytes);
    }
    this.at = end;
    this.after = {
      main: readU64(this.page, last + RECORD.main),
      sub: readU64(this.page, last + RECORD.sub),
    };
    return new PackedRows(this.page.subarray(start, end), this.fixedBytes);
  }

  private read(after: RevisionPosition, rows: number, inlineMax: number): Buffer {
    const { upTo, withValues } = this;
    return this.source.packedRows({ after, upTo, rows, withValues, inlineMax });
  }

  /** The row whose record at `at` came without its bytes, read on its own. */
  private readLeftOut(): PackedRows {
    const main = readU64(this.page, this.at + RECORD.main);
    const sub = readU64(this.page, this.at + RECORD.sub);
    const row = this.read({ main, sub: sub - 1 }, 1, Number.MAX_SAFE_INTEGER);
    assert(row.length > 0 && readU64(row, RECORD.main) === main && readU64(row, RECORD.sub) === sub
      && recordEnd(row, 0, this.fixedBytes) === row.length, `packed row ${main}_${sub} read alone`);
    this.at = recordEnd(this.page, this.at, this.fixedBytes);
    this.after = { main, sub };
    return new PackedRows(row, this.fixedBytes);
  }

  /** The page's record count, once its records are seen to be whole and in revision order. */
  private checkPage(page: Buffer): number {
    let previous = this.after;
    let rows = 0;
    for (let at = 0; at < page.length; at = recordEnd(page, at, this.fixedBytes)) {
      assert(at + this.fixedBytes <= page.length, 'a packed page ends inside a record');
      const main = readU64(page, at + RECORD.main);
      const sub = readU64(page, at + RECORD.sub);
      const isAfter = main > previous.main || (main === previous.main && sub > previous.sub);
      assert(isAfter && main <= this.upTo, `packed rows out of revision order at ${main}_${sub}`);
      const end = recordEnd(page, at, this.fixedBytes);
      assert(end <= page.length, 'a packed page ends inside a record');
      previous = { main, sub };
      rows++;
    }
    return rows;
  }
}
