import { StoreError } from '../mvcc/errors.js';
import type {
  Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, MvccEvent, PutRequest,
  RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResult,
} from '../mvcc/types.js';

/**
 * Converts between the proto-loader objects of the wire (keepCase, longs as strings, enums as
 * numbers, bytes as Buffers, defaults on, oneofs named) and the store's own types. 64-bit IDs
 * travel as decimal strings and become bigint; revisions become numbers.
 */
export type Wire = Record<string, unknown>;

const EMPTY = Buffer.alloc(0);

export function bytes(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return EMPTY;
}

export function int(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '') return Number(value);
  return 0;
}

export function big(value: unknown): bigint {
  if (typeof value === 'string' && value !== '') return BigInt(value);
  if (typeof value === 'number') return BigInt(value);
  if (typeof value === 'bigint') return value;
  return 0n;
}

export function bool(value: unknown): boolean {
  return value === true;
}

function obj(value: unknown): Wire {
  return typeof value === 'object' && value !== null ? (value as Wire) : {};
}

const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'not-equal'];
const COMPARE_TARGETS: readonly CompareTarget[] = ['version', 'create', 'mod', 'value', 'lease'];

/**
 * Set by the decoder when a Range's range_end was sent present but empty (see grpc-server.ts);
 * etcd then reads every key from `key` on. Its DeleteRange treats the same request as one key.
 */
export const RANGE_END_PRESENT = '__etcronRangeEndPresent';
const FROM_KEY = Buffer.from([0]);

function rangeEndOf(w: Wire): Buffer {
  const end = bytes(w['range_end']);
  return end.length === 0 && w[RANGE_END_PRESENT] === true ? FROM_KEY : end;
}

export function decodeRange(w: Wire): RangeRequest {
  const order = SORT_ORDERS[int(w['sort_order'])];
  const target = SORT_TARGETS[int(w['sort_target'])];
  // etcd treats an unknown sort order as no sort; an unknown target would crash etcd, we refuse it.
  if (target === undefined) throw new StoreError('invalid-sort-option');
  return {
    key: bytes(w['key']),
    rangeEnd: rangeEndOf(w),
    limit: int(w['limit']),
    revision: int(w['revision']),
    sortOrder: order ?? 'none',
    sortTarget: target,
    serializable: bool(w['serializable']),
    keysOnly: bool(w['keys_only']),
    countOnly: bool(w['count_only']),
    minModRevision: int(w['min_mod_revision']),
    maxModRevision: int(w['max_mod_revision']),
    minCreateRevision: int(w['min_create_revision']),
    maxCreateRevision: int(w['max_create_revision']),
  };
}

export function decodePut(w: Wire): PutRequest {
  return {
    key: bytes(w['key']),
    value: bytes(w['value']),
    lease: big(w['lease']),
    prevKv: bool(w['prev_kv']),
    ignoreValue: bool(w['ignore_value']),
    ignoreLease: bool(w['ignore_lease']),
  };
}

export function decodeDeleteRange(w: Wire): DeleteRangeRequest {
  return { key: bytes(w['key']), rangeEnd: bytes(w['range_end']), prevKv: bool(w['prev_kv']) };
}

function decodeCompare(w: Wire): Compare {
  const target = COMPARE_TARGETS[int(w['target'])] ?? 'version';
  const union = typeof w['target_union'] === 'string' ? w['target_union'] : '';
  // Go reads the union through typed getters: a union of another kind reads as zero.
  const field = { version: 'version', create: 'create_revision', mod: 'mod_revision', value: 'value', lease: 'lease' }[target];
  const raw = union === field ? w[field] : undefined;
  const operand = target === 'value' ? bytes(raw) : target === 'lease' ? big(raw) : int(raw);
  const result = COMPARE_RESULTS[int(w['result'])];
  return {
    result: result ?? 'always',
    target,
    key: bytes(w['key']),
    rangeEnd: bytes(w['range_end']),
    operand,
  };
}

function decodeOp(w: Wire): RequestOp {
  switch (w['request']) {
    case 'request_range': return { type: 'range', request: decodeRange(obj(w['request_range'])) };
    case 'request_put': return { type: 'put', request: decodePut(obj(w['request_put'])) };
    case 'request_delete_range': return { type: 'delete-range', request: decodeDeleteRange(obj(w['request_delete_range'])) };
    case 'request_txn': return { type: 'txn', request: decodeTxn(obj(w['request_txn'])) };
    default: throw new StoreError('key-not-found');
  }
}

export function decodeTxn(w: Wire): TxnRequest {
  const list = (v: unknown): Wire[] => (Array.isArray(v) ? (v as Wire[]) : []);
  return {
    compare: list(w['compare']).map(decodeCompare),
    success: list(w['success']).map(decodeOp),
    failure: list(w['failure']).map(decodeOp),
  };
}

export function encodeKv(kv: KeyValue): Wire {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease.toString(),
  };
}

export function encodeEvent(event: MvccEvent): Wire {
  const kv: Wire = event.type === 'put' ? encodeKv(event.kv) : { key: event.kv.key, mod_revision: event.kv.modRevision };
  const out: Wire = { type: event.type === 'put' ? 0 : 1, kv };
  if (event.prevKv !== null) out['prev_kv'] = encodeKv(event.prevKv);
  return out;
}

export type HeaderFn = (revision?: number) => Wire;

export function encodeTxnResult(result: TxnResult, header: Wire | null): Wire {
  return {
    header: header ?? {},
    succeeded: result.succeeded,
    responses: result.responses.map(encodeResponseOp),
  };
}

function encodeResponseOp(op: ResponseOp): Wire {
  switch (op.type) {
    case 'range':
      return { response_range: { header: { revision: op.revision }, kvs: op.result.kvs.map(encodeKv), more: op.result.more, count: op.result.count } };
    case 'put':
      return { response_put: { header: { revision: op.revision }, ...(op.result.prevKv !== null ? { prev_kv: encodeKv(op.result.prevKv) } : {}) } };
    case 'delete-range':
      return { response_delete_range: { header: { revision: op.revision }, deleted: op.result.deleted, prev_kvs: op.result.prevKvs.map(encodeKv) } };
    case 'txn':
      return { response_txn: encodeTxnResult(op.result, null) };
  }
}
