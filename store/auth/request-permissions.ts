import type { DeleteRangeRequest, PutRequest, RequestOp, TxnRequest } from '../mvcc/types.js';
import type { AuthStore } from './auth-store.js';
import type { RequestAuth } from './requests.js';

const SINGLE_KEY = Buffer.alloc(0);

/** The keys attached to a lease, or undefined when there is no such lease. */
export type LeaseKeys = (id: bigint) => Iterable<string> | undefined;

/**
 * The permission checks etcd's auth applier makes before a write, in its order. They run at apply
 * time against the auth state of that moment and the sender recorded in the entry.
 */
export function checkPut(
  store: AuthStore,
  who: RequestAuth | undefined,
  request: PutRequest,
  leaseKeys: LeaseKeys,
): void {
  store.checkKeys(who, 'write', request.key, SINGLE_KEY);
  // A user who could not revoke the lease (a key of it is not writable) may not attach more keys to it.
  if (request.lease !== 0n) checkLeaseKeys(store, who, request.lease, leaseKeys);
  if (request.prevKv) store.checkKeys(who, 'read', request.key, SINGLE_KEY);
}

export function checkDeleteRange(
  store: AuthStore,
  who: RequestAuth | undefined,
  request: DeleteRangeRequest,
): void {
  store.checkKeys(who, 'write', request.key, request.rangeEnd);
  if (request.prevKv) store.checkKeys(who, 'read', request.key, request.rangeEnd);
}

/** Every compare reads; both branches are checked, whichever is taken, nested txns included. */
export function checkTxn(
  store: AuthStore,
  who: RequestAuth | undefined,
  request: TxnRequest,
): void {
  for (const compare of request.compare)
    store.checkKeys(who, 'read', compare.key, compare.rangeEnd);
  checkOps(store, who, request.success);
  checkOps(store, who, request.failure);
}

function checkOps(store: AuthStore, who: RequestAuth | undefined, ops: readonly RequestOp[]): void {
  for (const op of ops) {
    switch (op.type) {
      case 'range':
        store.checkKeys(who, 'read', op.request.key, op.request.rangeEnd);
        break;
      case 'put':
        store.checkKeys(who, 'write', op.request.key, SINGLE_KEY);
        break;
      case 'delete-range':
        if (op.request.prevKv) store.checkKeys(who, 'read', op.request.key, op.request.rangeEnd);
        store.checkKeys(who, 'write', op.request.key, op.request.rangeEnd);
        break;
      case 'txn':
        checkTxn(store, who, op.request);
        break;
    }
  }
}

/** Revoking a lease deletes its keys: the sender must be root or able to write every one of them. */
export function checkLeaseKeys(
  store: AuthStore,
  who: RequestAuth | undefined,
  id: bigint,
  leaseKeys: LeaseKeys,
): void {
  const keys = leaseKeys(id);
  if (keys === undefined || store.isAdmin(who)) return;
  for (const key of keys) store.checkKeys(who, 'write', Buffer.from(key, 'latin1'), SINGLE_KEY);
}
