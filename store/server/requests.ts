import { deserialize, serialize } from 'node:v8';
import type { AuthOp, RequestAuth } from '../auth/requests.js';
import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types.js';
import { decodeTxnFrom, encodeTxnAfter } from './txn-entry-codec.js';

export type AlarmKind = 'none' | 'nospace' | 'corrupt';

/**
 * Everything that changes state travels through the log as one of these. `auth` is who sent it
 * (see RequestAuth): the applier checks permissions with it, so every member decides alike.
 */
export type InternalRequest = RequestKind & { readonly auth?: RequestAuth };

type RequestKind =
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'delete-range'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest }
  | { readonly type: 'compact'; readonly revision: number }
  | { readonly type: 'lease-grant'; readonly id: bigint; readonly ttlSeconds: number }
  | { readonly type: 'lease-revoke'; readonly id: bigint }
  | { readonly type: 'alarm'; readonly activate: boolean; readonly memberId: bigint; readonly alarm: AlarmKind }
  | { readonly type: 'member-attributes'; readonly id: bigint; readonly name: string; readonly clientUrls: readonly string[] }
  | { readonly type: 'auth'; readonly op: AuthOp }
  | { readonly type: 'noop' };

/** A log entry's payload: the request and the ID the proposing member waits on. */
export interface Envelope {
  readonly requestId: bigint;
  readonly request: InternalRequest;
}

// An entry is the request ID (8 bytes, big-endian) and the request. The ID comes first so that
// the member that proposed a request can apply the object it still holds instead of decoding it
// again. Puts, most of all writes, have a compact layout of their own (tag PUT_TAG): the v8
// structured-clone format costs a host-object walk per Buffer. So do txns (tag TXN_TAG, the
// layout of txn-entry-codec.ts). Everything else is v8 structured clone, which keeps Buffers,
// bigints and nesting exactly; its first byte (0xff, the version tag) is neither tag, and
// entries written before the compact layouts existed still decode.
const PUT_TAG = 0x01;
const TXN_TAG = 0x02;
const FLAG_PREV_KV = 1;
const FLAG_IGNORE_VALUE = 2;
const FLAG_IGNORE_LEASE = 4;
const FLAG_AUTH = 8;

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const { request } = envelope;
  if (request.type === 'put') return encodePut(envelope.requestId, request.request, request.auth);
  if (request.type === 'txn') {
    const data = encodeTxnAfter(txnPrefix(envelope.requestId, request.auth), request.request);
    if (data !== null) return data;
  }
  const body = serialize(request);
  const data = Buffer.allocUnsafe(8 + body.length);
  data.writeBigUInt64BE(envelope.requestId, 0);
  body.copy(data, 8);
  return data;
}

//   id u64 | PUT_TAG | flags u8 | lease u64 | key length u32 | key | value length u32 | value
//   [ auth revision f64 | user name length u32 | user name (UTF-8) ]   when FLAG_AUTH
function encodePut(requestId: bigint, put: PutRequest, auth: RequestAuth | undefined): Uint8Array {
  const user = auth === undefined ? null : Buffer.from(auth.username, 'utf8');
  const size = 8 + 1 + 1 + 8 + 4 + put.key.length + 4 + put.value.length + (user === null ? 0 : 8 + 4 + user.length);
  const data = Buffer.allocUnsafe(size);
  let at = data.writeBigUInt64BE(requestId, 0);
  at = data.writeUInt8(PUT_TAG, at);
  const flags = (put.prevKv ? FLAG_PREV_KV : 0) | (put.ignoreValue ? FLAG_IGNORE_VALUE : 0)
    | (put.ignoreLease ? FLAG_IGNORE_LEASE : 0) | (user === null ? 0 : FLAG_AUTH);
  at = data.writeUInt8(flags, at);
  at = data.writeBigUInt64BE(BigInt.asUintN(64, put.lease), at);
  at = data.writeUInt32BE(put.key.length, at);
  at += put.key.copy(data, at);
  at = data.writeUInt32BE(put.value.length, at);
  at += put.value.copy(data, at);
  if (user !== null && auth !== undefined) {
    at = data.writeDoubleBE(auth.revision, at);
    at = data.writeUInt32BE(user.length, at);
    user.copy(data, at);
  }
  return data;
}

//   id u64 | TXN_TAG | flags u8 | [ auth revision f64 | user name length u32 | user name ] | txn
function txnPrefix(requestId: bigint, auth: RequestAuth | undefined): Buffer {
  const user = auth === undefined ? null : Buffer.from(auth.username, 'utf8');
  const prefix = Buffer.allocUnsafe(8 + 1 + 1 + (user === null ? 0 : 8 + 4 + user.length));
  let at = prefix.writeBigUInt64BE(requestId, 0);
  at = prefix.writeUInt8(TXN_TAG, at);
  at = prefix.writeUInt8(user === null ? 0 : FLAG_AUTH, at);
  if (user !== null && auth !== undefined) {
    at = prefix.writeDoubleBE(auth.revision, at);
    at = prefix.writeUInt32BE(user.length, at);
    user.copy(prefix, at);
  }
  return prefix;
}

function decodeTxnEntry(bytes: Buffer): InternalRequest {
  let at = 9;
  const flags = bytes.readUInt8(at);
  at += 1;
  if ((flags & FLAG_AUTH) === 0) return { type: 'txn', request: decodeTxnFrom(bytes, at) };
  const revision = bytes.readDoubleBE(at);
  at += 8;
  const userLength = bytes.readUInt32BE(at);
  at += 4;
  const username = bytes.toString('utf8', at, at + userLength);
  at += userLength;
  return { type: 'txn', request: decodeTxnFrom(bytes, at), auth: { username, revision } };
}

function decodePut(bytes: Buffer): InternalRequest {
  let at = 9;
  const flags = bytes.readUInt8(at);
  at += 1;
  const lease = BigInt.asIntN(64, bytes.readBigUInt64BE(at));
  at += 8;
  const keyLength = bytes.readUInt32BE(at);
  at += 4;
  const key = Buffer.from(bytes.subarray(at, at + keyLength));
  at += keyLength;
  const valueLength = bytes.readUInt32BE(at);
  at += 4;
  const value = Buffer.from(bytes.subarray(at, at + valueLength));
  at += valueLength;
  const request: PutRequest = {
    key, value, lease,
    prevKv: (flags & FLAG_PREV_KV) !== 0,
    ignoreValue: (flags & FLAG_IGNORE_VALUE) !== 0,
    ignoreLease: (flags & FLAG_IGNORE_LEASE) !== 0,
  };
  if ((flags & FLAG_AUTH) === 0) return { type: 'put', request };
  const revision = bytes.readDoubleBE(at);
  at += 8;
  const userLength = bytes.readUInt32BE(at);
  at += 4;
  return { type: 'put', request, auth: { username: bytes.toString('utf8', at, at + userLength), revision } };
}

export function requestIdOf(data: Uint8Array): bigint {
  return Buffer.from(data.buffer, data.byteOffset, 8).readBigUInt64BE(0);
}

export function decodeEnvelope(data: Uint8Array): Envelope {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const requestId = bytes.readBigUInt64BE(0);
  if (bytes[8] === PUT_TAG) return { requestId, request: decodePut(bytes) };
  if (bytes[8] === TXN_TAG) return { requestId, request: decodeTxnEntry(bytes) };
  return { requestId, request: deserialize(bytes.subarray(8)) as InternalRequest };
}
