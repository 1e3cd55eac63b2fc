import { deserialize, serialize } from 'node:v8';
import type { AuthOp, RequestAuth } from '../auth/requests.js';
import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types.js';

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

// An entry is the request ID (8 bytes, big-endian) and the request in the v8 structured-clone
// format, which keeps Buffers, bigints and nesting exactly. The ID comes first so that the member
// that proposed a request can apply the object it still holds instead of decoding it again.
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const body = serialize(envelope.request);
  const data = Buffer.allocUnsafe(8 + body.length);
  data.writeBigUInt64BE(envelope.requestId, 0);
  body.copy(data, 8);
  return data;
}

export function requestIdOf(data: Uint8Array): bigint {
  return Buffer.from(data.buffer, data.byteOffset, 8).readBigUInt64BE(0);
}

export function decodeEnvelope(data: Uint8Array): Envelope {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { requestId: bytes.readBigUInt64BE(0), request: deserialize(bytes.subarray(8)) as InternalRequest };
}
