import { status } from '@grpc/grpc-js';
import type { StoreErrorKind } from '../mvcc/errors.js';

/** etcd's gRPC code and exact message text for each refusal; clients match on the text. */
export const STORE_ERROR_WIRE: Record<StoreErrorKind, readonly [status, string]> = {
  'key-not-provided': [status.INVALID_ARGUMENT, 'etcdserver: key is not provided'],
  'key-not-found': [status.INVALID_ARGUMENT, 'etcdserver: key not found'],
  'value-provided': [status.INVALID_ARGUMENT, 'etcdserver: value is provided'],
  'lease-provided': [status.INVALID_ARGUMENT, 'etcdserver: lease is provided'],
  'too-many-ops': [status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'],
  'duplicate-key': [status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'],
  'request-too-large': [status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
  'compacted': [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'],
  'future-rev': [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
  'lease-not-found': [status.NOT_FOUND, 'etcdserver: requested lease not found'],
  'lease-exists': [status.FAILED_PRECONDITION, 'etcdserver: lease already exists'],
  'lease-ttl-too-large': [status.OUT_OF_RANGE, 'etcdserver: too large lease TTL'],
  'no-space': [status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'],
  'corrupt': [status.DATA_LOSS, 'etcdserver: corrupt cluster'],
  'no-leader': [status.UNAVAILABLE, 'etcdserver: no leader'],
  'not-leader': [status.FAILED_PRECONDITION, 'etcdserver: not leader'],
  'bad-leader-transferee': [status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'],
  'timeout': [status.UNAVAILABLE, 'etcdserver: request timed out'],
  'stopped': [status.UNAVAILABLE, 'etcdserver: server stopped'],
  'too-many-requests': [status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'],
  'member-not-found': [status.NOT_FOUND, 'etcdserver: member not found'],
  'invalid-sort-option': [status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'],
};
