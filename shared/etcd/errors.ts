import {
  ClientClosedError, EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCInternalError, GRPCUnavailableError,
  GRPCCancelledError, isRecoverableError,
} from 'etcd3';

/**
 * What the scheduler does about a failed store call:
 * - retry: transient (no leader, connection lost); the same request may be sent again.
 * - unknown: the request may or may not have been applied (deadline, dropped reply); read back before acting.
 * - lease-lost: our lease is gone, so every claim bound to it is gone: stop running and never report.
 * - compacted: the revision asked for is compacted; re-read from the current state.
 * - closed: the client was closed; stop.
 * - fatal: a request the store refuses; retrying cannot help.
 */
export type EtcdFailureKind = 'retry' | 'unknown' | 'lease-lost' | 'compacted' | 'closed' | 'fatal';

export class SchedulerStoreError extends Error {
  override readonly name = 'SchedulerStoreError';
  constructor(readonly kind: EtcdFailureKind, message: string, override readonly cause?: unknown) {
    super(message);
  }
}

export function classifyEtcdError(err: unknown): EtcdFailureKind {
  if (err instanceof SchedulerStoreError) return err.kind;
  if (!(err instanceof Error)) return 'fatal';
  const message = err.message;
  if (err instanceof ClientClosedError) return 'closed';
  if (err instanceof EtcdLeaseInvalidError || message.includes('requested lease not found')) return 'lease-lost';
  if (message.includes('required revision has been compacted')) return 'compacted';
  // A deadline or a cancelled stream after sending: the write may have been applied.
  if (err instanceof GRPCDeadlineExceededError || err instanceof GRPCCancelledError) return 'unknown';
  if (message.includes('request timed out') || message.includes('leader changed')) return 'unknown';
  if (err instanceof GRPCUnavailableError || err instanceof GRPCInternalError || isRecoverableError(err)) return 'retry';
  if (message.includes('no leader') || message.includes('ECONNREFUSED') || message.includes('No connection')) return 'retry';
  return 'fatal';
}

/** A write whose outcome is not known must be read back, not blindly repeated. */
export function isOutcomeUnknown(err: unknown): boolean {
  const kind = classifyEtcdError(err);
  return kind === 'unknown' || kind === 'retry';
}
