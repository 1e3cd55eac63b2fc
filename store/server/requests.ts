import { deserialize, serialize } from 'node:v8';
import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types.js';

export type AlarmKind = 'none' | 'nospace' | 'corrupt';

/** Everything that changes state travels through the log as one of these. */
export type InternalRequest =
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'delete-range'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest }
  | { readonly type: 'compact'; readonly revision: number }
  | { readonly type: 'lease-grant'; readonly id: bigint; readonly ttlSeconds: number }
  | { readonly type: 'lease-revoke'; readonly id: bigint }
  | { readonly type: 'alarm'; readonly activate: boolean; readonly memberId: bigint; readonly alarm: AlarmKind }
  | { readonly type: 'member-attributes'; readonly id: bigint; readonly name: string; readonly clientUrls: readonly string[] }
  | { readonly type: 'noop' };

/** A log entry's payload: the request and the ID the proposing member waits on. */
export interface Envelope {
  readonly requestId: bigint;
  readonly request: InternalRequest;
}

// The v8 structured-clone format keeps Buffers, bigints and nesting exactly, and is fast; all
// encoding of entries goes through these two functions so the format can change in one place.
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return serialize(envelope);
}

export function decodeEnvelope(data: Uint8Array): Envelope {
  return deserialize(data) as Envelope;
}
