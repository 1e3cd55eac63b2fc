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

export function encodeFrame(value: object): Buffer {
  return serialize(value);
}

export function decodeFrame<T>(data: Buffer): T {
  return deserialize(data) as T;
}
