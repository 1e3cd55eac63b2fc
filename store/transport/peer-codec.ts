import { deserialize, serialize } from 'node:v8';
import type { Message } from '../raft/types.js';

/**
 * Frames of the peer protocol. The v8 structured-clone format carries bigint IDs and byte arrays
 * exactly; each frame also names the sender's cluster so a member of another cluster is refused.
 */
export interface PeerFrame {
  readonly clusterId: bigint;
  readonly from: bigint;
  readonly to: bigint;
  readonly messages: readonly Message[];
}

export interface LeaseRenewRequest {
  readonly clusterId: bigint;
  readonly kind: 'renew' | 'time-to-live';
  readonly leaseId: bigint;
}

export interface LeaseRenewResponse {
  readonly ok: boolean;
  /** renew: the TTL granted again (0 = unknown or expired); time-to-live: seconds left (-1 unknown). */
  readonly ttl: number;
  readonly grantedTtl: number;
  readonly error?: string;
}

/** The lease calls of one event-loop turn, forwarded to the leader as one peer call. */
export interface LeaseBatchRequest {
  readonly clusterId: bigint;
  readonly requests: readonly Omit<LeaseRenewRequest, 'clusterId'>[];
}

/** One answer per request, in order; a failed one has ok false and its error. */
export interface LeaseBatchResponse {
  readonly responses: readonly LeaseRenewResponse[];
}

/** A member checking its data at start (--experimental-initial-corrupt-check) asks a peer for its HashKV. */
export interface HashKVRequest {
  readonly clusterId: bigint;
  readonly from: bigint;
  /** The asking member's current revision: the one every member must hash alike. */
  readonly revision: number;
}

/** A member's HashKV at a revision, or why it has none there (as etcd's HashByRev). */
export type KvHashResult =
  | { readonly kind: 'hash'; readonly hash: number; readonly revision: number; readonly compactRevision: number }
  /** The revision is past this member's current one (`revision`): it lags behind. */
  | { readonly kind: 'future-rev'; readonly revision: number; readonly compactRevision: number }
  /** The revision is at or below this member's compaction point (`compactRevision`). */
  | { readonly kind: 'compacted'; readonly revision: number; readonly compactRevision: number };

export type HashKVResponse = KvHashResult & { readonly memberId: bigint };

export function encodeFrame(value: object): Buffer {
  return serialize(value);
}

export function decodeFrame<T>(data: Buffer): T {
  return deserialize(data) as T;
}
