import { StoreError } from '../mvcc/errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../mvcc/types.js';

/**
 * Syntax checks done before a request is proposed, as etcd's API layer does: they need no state,
 * so a refused request never reaches the log. State checks (leases, revisions) happen at apply.
 */
export interface Limits {
  readonly maxTxnOps: number;
  readonly maxRequestBytes: number;
  /** --max-concurrent-streams: also the JSON gateway's requests in flight per listener. */
  readonly maxConcurrentStreams?: number;
}

/** etcd wraps a request into an internal one of about this many more bytes before sizing it. */
const INTERNAL_WRAP_BYTES = 20;

export function checkRange(request: RangeRequest): void {
  if (request.key.length === 0) throw new StoreError('key-not-provided');
}

export function checkPut(request: PutRequest, limits: Limits): void {
  if (request.key.length === 0) throw new StoreError('key-not-provided');
  if (request.ignoreValue && request.value.length !== 0) throw new StoreError('value-provided');
  if (request.ignoreLease && request.lease !== 0n) throw new StoreError('lease-provided');
  if (putSize(request) + INTERNAL_WRAP_BYTES > limits.maxRequestBytes) throw new StoreError('request-too-large');
}

export function checkDeleteRange(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw new StoreError('key-not-provided');
}

export function checkTxn(request: TxnRequest, limits: Limits): void {
  checkTxnOps(request, limits.maxTxnOps);
  checkBranchDuplicates(request.success);
  checkBranchDuplicates(request.failure);
  if (txnSize(request) + INTERNAL_WRAP_BYTES > limits.maxRequestBytes) throw new StoreError('request-too-large');
}

/** A nested txn may use what its enclosing level left of the op budget. */
function checkTxnOps(request: TxnRequest, budget: number): void {
  const used = Math.max(request.compare.length, request.success.length, request.failure.length);
  if (used > budget) throw new StoreError('too-many-ops');
  for (const c of request.compare) if (c.key.length === 0) throw new StoreError('key-not-provided');
  for (const op of [...request.success, ...request.failure]) {
    switch (op.type) {
      case 'range': checkRange(op.request); break;
      case 'put':
        if (op.request.key.length === 0) throw new StoreError('key-not-provided');
        if (op.request.ignoreValue && op.request.value.length !== 0) throw new StoreError('value-provided');
        if (op.request.ignoreLease && op.request.lease !== 0n) throw new StoreError('lease-provided');
        break;
      case 'delete-range': checkDeleteRange(op.request); break;
      case 'txn': checkTxnOps(op.request, budget - used); break;
    }
  }
}

interface Interval {
  readonly from: string;
  /** Exclusive; `from` + '\0' for a single key. */
  readonly to: string;
}

/**
 * The keys a delete covers, as etcd's duplicate check sees them: it takes range_end literally,
 * so a from-key delete (range_end "\0") is the empty interval and never conflicts with a put.
 */
function intervalOf(key: Buffer, rangeEnd: Buffer): Interval {
  const from = key.toString('latin1');
  if (rangeEnd.length === 0) return { from, to: `${from}\u0000` };
  return { from, to: rangeEnd.toString('latin1') };
}

function covers(intervals: readonly Interval[], key: string): boolean {
  return intervals.some((i) => key >= i.from && key < i.to);
}

/**
 * A branch may not write one key twice: two puts, or a put and a delete covering it, at any depth.
 * The two branches of a nested txn exclude each other, so the same put in both is fine.
 */
function checkIntervals(ops: readonly RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) if (op.type === 'delete-range') dels.push(intervalOf(op.request.key, op.request.rangeEnd));
  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkIntervals(op.request.success);
    const otherwise = checkIntervals(op.request.failure);
    for (const key of then.puts) {
      if (puts.has(key) || covers(dels, key)) throw new StoreError('duplicate-key');
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) throw new StoreError('duplicate-key');
      if (covers(dels, key)) throw new StoreError('duplicate-key');
      puts.add(key);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const key = op.request.key.toString('latin1');
    if (puts.has(key) || covers(dels, key)) throw new StoreError('duplicate-key');
    puts.add(key);
  }
  return { puts, dels };
}

function checkBranchDuplicates(ops: readonly RequestOp[]): void {
  checkIntervals(ops);
}

/** Bytes of a length-delimited protobuf field with this payload length. */
function field(length: number): number {
  return 1 + varintSize(length) + length;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function putSize(request: PutRequest): number {
  return field(request.key.length) + (request.value.length > 0 ? field(request.value.length) : 0) + (request.lease !== 0n ? 11 : 0) + 6;
}

function opSize(op: RequestOp): number {
  switch (op.type) {
    case 'range': return field(op.request.key.length + op.request.rangeEnd.length + 8);
    case 'put': return field(putSize(op.request));
    case 'delete-range': return field(op.request.key.length + op.request.rangeEnd.length + 6);
    case 'txn': return field(txnSize(op.request));
  }
}

function txnSize(request: TxnRequest): number {
  let size = 0;
  for (const c of request.compare) size += field(c.key.length + c.rangeEnd.length + (Buffer.isBuffer(c.operand) ? c.operand.length : 11) + 8);
  for (const op of request.success) size += opSize(op);
  for (const op of request.failure) size += opSize(op);
  return size;
}
