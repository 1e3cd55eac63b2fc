import type {
  Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
  SortOrder, SortTarget, TxnRequest,
} from '../mvcc/types.js';

/**
 * A compact layout for a txn in a log entry. Txns are most of the scheduler's writes, and v8's
 * structured clone, which kept them before, walks every Buffer as a host object: it took a tenth
 * of a txn's CPU time. Numbers are doubles (every member reads back the double it was), bigints
 * signed 64-bit, byte strings a u32 length and their bytes, enums an index into the lists below.
 * A txn holding anything else (a bigint beyond 64 bits) is refused by encodeTxn; the caller keeps
 * structured clone for it.
 */

const COMPARE_RESULTS: readonly CompareResult[] = [
  'equal', 'greater', 'less', 'not-equal', 'always',
];
const COMPARE_TARGETS: readonly CompareTarget[] = ['version', 'create', 'mod', 'value', 'lease'];
const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const OP_TYPES: readonly RequestOp['type'][] = ['range', 'put', 'delete-range', 'txn'];
const OPERAND_NUMBER = 0;
const OPERAND_BIGINT = 1;
const OPERAND_BYTES = 2;

/** Thrown by the writer for a value the layout cannot hold. */
class NotEncodable extends Error {}

class EntryWriter {
  private buffer: Buffer;
  at: number;

  constructor(head: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(256, head * 2));
    this.at = head;
  }

  get bytes(): Buffer {
    return this.buffer;
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }

  u8(value: number): void {
    this.room(1);
    this.buffer[this.at++] = value;
  }

  u32(value: number): void {
    this.room(4);
    this.at = this.buffer.writeUInt32BE(value, this.at);
  }

  f64(value: number): void {
    this.room(8);
    this.at = this.buffer.writeDoubleBE(value, this.at);
  }

  i64(value: bigint): void {
    if (BigInt.asIntN(64, value) !== value) throw new NotEncodable();
    this.room(8);
    this.at = this.buffer.writeBigInt64BE(value, this.at);
  }

  bytesField(value: Buffer): void {
    this.u32(value.length);
    this.room(value.length);
    this.at += value.copy(this.buffer, this.at);
  }

  index<T>(list: readonly T[], value: T): void {
    const at = list.indexOf(value);
    if (at < 0) throw new NotEncodable();
    this.u8(at);
  }
}

class EntryReader {
  at: number;

  constructor(private readonly buffer: Buffer, start: number) {
    this.at = start;
  }

  u8(): number {
    return this.buffer.readUInt8(this.at++);
  }

  u32(): number {
    const value = this.buffer.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  f64(): number {
    const value = this.buffer.readDoubleBE(this.at);
    this.at += 8;
    return value;
  }

  i64(): bigint {
    const value = this.buffer.readBigInt64BE(this.at);
    this.at += 8;
    return value;
  }

  /** A copy: the entry's buffer is not kept alive by what the store holds on to. */
  bytes(): Buffer {
    const length = this.u32();
    if (this.at + length > this.buffer.length) throw new RangeError('txn entry cut short');
    const value = Buffer.from(this.buffer.subarray(this.at, this.at + length));
    this.at += length;
    return value;
  }

  index<T>(list: readonly T[]): T {
    const value = list[this.u8()];
    if (value === undefined) throw new RangeError('txn entry holds an unknown enum value');
    return value;
  }
}

function writeCompare(out: EntryWriter, compare: Compare): void {
  out.index(COMPARE_RESULTS, compare.result);
  out.index(COMPARE_TARGETS, compare.target);
  out.bytesField(compare.key);
  out.bytesField(compare.rangeEnd);
  const operand = compare.operand;
  if (typeof operand === 'number') {
    out.u8(OPERAND_NUMBER);
    out.f64(operand);
  } else if (typeof operand === 'bigint') {
    out.u8(OPERAND_BIGINT);
    out.i64(operand);
  } else {
    out.u8(OPERAND_BYTES);
    out.bytesField(operand);
  }
}

function readCompare(input: EntryReader): Compare {
  const result = input.index(COMPARE_RESULTS);
  const target = input.index(COMPARE_TARGETS);
  const key = input.bytes();
  const rangeEnd = input.bytes();
  const kind = input.u8();
  let operand: number | bigint | Buffer;
  if (kind === OPERAND_NUMBER) operand = input.f64();
  else if (kind === OPERAND_BIGINT) operand = input.i64();
  else operand = input.bytes();
  return { result, target, key, rangeEnd, operand };
}

const RANGE_SERIALIZABLE = 1;
const RANGE_KEYS_ONLY = 2;
const RANGE_COUNT_ONLY = 4;

function writeRange(out: EntryWriter, range: RangeRequest): void {
  out.bytesField(range.key);
  out.bytesField(range.rangeEnd);
  out.f64(range.limit);
  out.f64(range.revision);
  out.index(SORT_ORDERS, range.sortOrder);
  out.index(SORT_TARGETS, range.sortTarget);
  out.u8((range.serializable ? RANGE_SERIALIZABLE : 0) | (range.keysOnly ? RANGE_KEYS_ONLY : 0)
    | (range.countOnly ? RANGE_COUNT_ONLY : 0));
  out.f64(range.minModRevision);
  out.f64(range.maxModRevision);
  out.f64(range.minCreateRevision);
  out.f64(range.maxCreateRevision);
}

function readRange(input: EntryReader): RangeRequest {
  const key = input.bytes();
  const rangeEnd = input.bytes();
  const limit = input.f64();
  const revision = input.f64();
  const sortOrder = input.index(SORT_ORDERS);
  const sortTarget = input.index(SORT_TARGETS);
  const flags = input.u8();
  return {
    key, rangeEnd, limit, revision, sortOrder, sortTarget,
    serializable: (flags & RANGE_SERIALIZABLE) !== 0,
    keysOnly: (flags & RANGE_KEYS_ONLY) !== 0,
    countOnly: (flags & RANGE_COUNT_ONLY) !== 0,
    minModRevision: input.f64(),
    maxModRevision: input.f64(),
    minCreateRevision: input.f64(),
    maxCreateRevision: input.f64(),
  };
}

const PUT_PREV_KV = 1;
const PUT_IGNORE_VALUE = 2;
const PUT_IGNORE_LEASE = 4;

function writePut(out: EntryWriter, put: PutRequest): void {
  out.bytesField(put.key);
  out.bytesField(put.value);
  out.i64(put.lease);
  out.u8((put.prevKv ? PUT_PREV_KV : 0) | (put.ignoreValue ? PUT_IGNORE_VALUE : 0)
    | (put.ignoreLease ? PUT_IGNORE_LEASE : 0));
}

function readPut(input: EntryReader): PutRequest {
  const key = input.bytes();
  const value = input.bytes();
  const lease = input.i64();
  const flags = input.u8();
  return {
    key, value, lease,
    prevKv: (flags & PUT_PREV_KV) !== 0,
    ignoreValue: (flags & PUT_IGNORE_VALUE) !== 0,
    ignoreLease: (flags & PUT_IGNORE_LEASE) !== 0,
  };
}

function writeDeleteRange(out: EntryWriter, request: DeleteRangeRequest): void {
  out.bytesField(request.key);
  out.bytesField(request.rangeEnd);
  out.u8(request.prevKv ? 1 : 0);
}

function readDeleteRange(input: EntryReader): DeleteRangeRequest {
  const key = input.bytes();
  const rangeEnd = input.bytes();
  return { key, rangeEnd, prevKv: input.u8() !== 0 };
}

function writeOp(out: EntryWriter, op: RequestOp): void {
  out.index(OP_TYPES, op.type);
  switch (op.type) {
    case 'range': writeRange(out, op.request); break;
    case 'put': writePut(out, op.request); break;
    case 'delete-range': writeDeleteRange(out, op.request); break;
    case 'txn': writeTxn(out, op.request); break;
  }
}

function readOp(input: EntryReader): RequestOp {
  const type = input.index(OP_TYPES);
  switch (type) {
    case 'range': return { type, request: readRange(input) };
    case 'put': return { type, request: readPut(input) };
    case 'delete-range': return { type, request: readDeleteRange(input) };
    case 'txn': return { type, request: readTxn(input) };
  }
}

function writeTxn(out: EntryWriter, txn: TxnRequest): void {
  out.u32(txn.compare.length);
  for (const compare of txn.compare) writeCompare(out, compare);
  out.u32(txn.success.length);
  for (const op of txn.success) writeOp(out, op);
  out.u32(txn.failure.length);
  for (const op of txn.failure) writeOp(out, op);
}

function readList<T>(input: EntryReader, read: (input: EntryReader) => T): T[] {
  const count = input.u32();
  const list: T[] = [];
  for (let i = 0; i < count; i++) list.push(read(input));
  return list;
}

function readTxn(input: EntryReader): TxnRequest {
  const compare = readList(input, readCompare);
  const success = readList(input, readOp);
  const failure = readList(input, readOp);
  return { compare, success, failure };
}

/**
 * `prefix` (the entry's header, written by the caller) followed by the txn, or null when the txn
 * holds a value this layout cannot carry.
 */
export function encodeTxnAfter(prefix: Buffer, txn: TxnRequest): Buffer | null {
  const out = new EntryWriter(prefix.length);
  prefix.copy(out.bytes, 0);
  try {
    writeTxn(out, txn);
  } catch (err) {
    if (err instanceof NotEncodable) return null;
    throw err;
  }
  return out.bytes.subarray(0, out.at);
}

/** Reads the txn that fills `bytes` from `start` to the end. */
export function decodeTxnFrom(bytes: Buffer, start: number): TxnRequest {
  const input = new EntryReader(bytes, start);
  const txn = readTxn(input);
  if (input.at !== bytes.length) throw new RangeError('txn entry has bytes after the txn');
  return txn;
}
