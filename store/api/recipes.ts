import { status, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { StoreError } from '../mvcc/errors.js';
import type { RangeRequest } from '../mvcc/types.js';
import type { EtcdServer } from '../server/etcd-server.js';
import type { Wire } from './codec.js';

/** Shared steps of the server-side lock and election recipes (etcd's concurrency package). */
export const EMPTY = Buffer.alloc(0);

export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function rangeOf(key: Buffer, rangeEnd: Buffer, extra: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key, rangeEnd, limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key', serializable: false,
    keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0,
    maxCreateRevision: 0, ...extra,
  };
}

/** Errors of these services pass through an internal client in etcd, so they arrive as UNKNOWN. */
export function asUnknown(err: unknown): never {
  if (err instanceof StoreError && err.kind === 'lease-not-found') throw unknownError('etcdserver: requested lease not found');
  throw err;
}

export function unknownError(message: string): Error {
  return Object.assign(new Error(message), { code: status.UNKNOWN });
}

type Call = ServerUnaryCall<Wire, Wire> | ServerWritableStream<Wire, Wire>;

function cancelledError(): Error {
  return Object.assign(new Error('context canceled'), { code: status.CANCELLED });
}

/**
 * Resolves at the first deletion of `key` from revision `fromRev` on, or when that history was
 * compacted (the caller looks again); rejects if the caller leaves.
 */
export function waitForDelete(server: EtcdServer, key: Buffer, fromRev: number, call: Call): Promise<void> {
  return new Promise((resolve, reject) => {
    const onCancel = (): void => {
      watcher.cancel();
      reject(cancelledError());
    };
    const watcher = server.watch({
      key, rangeEnd: EMPTY, startRev: fromRev, noPut: true, noDelete: false, prevKv: false,
      deliver: () => {
        watcher.cancel();
        call.off('cancelled', onCancel);
        resolve();
      },
      // The deletion may be among the compacted revisions: the caller reads the key again.
      compacted: () => {
        call.off('cancelled', onCancel);
        resolve();
      },
    });
    call.once('cancelled', onCancel);
  });
}

/**
 * Waits until no key under `prefix` was created before `createRevision`: each round waits for the
 * newest older key to go. Returns the revision at which the caller was found oldest.
 */
export async function waitForOlderKeys(server: EtcdServer, prefix: Buffer, createRevision: number, call: Call): Promise<number> {
  for (;;) {
    if (call.cancelled) throw cancelledError();
    await server.readBarrier();
    const { result, revision } = server.range(rangeOf(prefix, prefixEnd(prefix), {
      maxCreateRevision: createRevision - 1, sortOrder: 'descend', sortTarget: 'create', limit: 1,
    }));
    const blocker = result.kvs[0];
    if (blocker === undefined) return revision;
    await waitForDelete(server, blocker.key, revision + 1, call);
  }
}
