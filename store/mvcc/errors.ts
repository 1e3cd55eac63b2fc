/** Refusals of the store, mapped once to etcd's gRPC code and text in store/api/grpc-status.ts. */
export type StoreErrorKind =
  | 'key-not-provided'
  | 'key-not-found'
  | 'value-provided'
  | 'lease-provided'
  | 'too-many-ops'
  | 'duplicate-key'
  | 'request-too-large'
  | 'compacted'
  | 'future-rev'
  | 'lease-not-found'
  | 'lease-exists'
  | 'lease-ttl-too-large'
  | 'no-space'
  | 'corrupt'
  | 'no-leader'
  | 'not-leader'
  | 'bad-leader-transferee'
  | 'timeout'
  | 'stopped'
  | 'too-many-requests'
  | 'member-not-found'
  | 'invalid-sort-option';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(readonly kind: StoreErrorKind, detail?: string) {
    super(detail === undefined ? kind : `${kind}: ${detail}`);
  }
}
