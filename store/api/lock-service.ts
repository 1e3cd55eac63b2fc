import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { EMPTY, asUnknown, rangeOf, waitForOlderKeys } from './recipes.js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';
import { big, bytes, type Wire } from './codec.js';

/**
 * Requests carry the caller, so the recipe's writes are checked against its permissions.
 * v3lockpb.Lock: the server side of etcd's lock recipe. The caller's key is `name/<hex lease>`,
 * created once under the lease; it holds the lock when no key under `name/` is older, and waits
 * for the deletion of the next older one otherwise.
 */
export function lockService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;

  return {
    Lock: unary(ctx, async (w, call) => {
      const name = bytes(w['name']);
      const lease = big(w['lease']);
      const key = Buffer.concat([name, Buffer.from(`/${lease.toString(16)}`)]);
      const result = await server
        .propose({
          type: 'txn',
          auth: await ctx.caller(call),
          request: {
            compare: [{ key, rangeEnd: EMPTY, target: 'create', result: 'equal', operand: 0 }],
            success: [{ type: 'put', request: { key, value: EMPTY, lease, prevKv: false, ignoreValue: false, ignoreLease: false } }],
            failure: [{ type: 'range', request: rangeOf(key, EMPTY) }],
          },
        })
        .catch(asUnknown);
      if (result.type !== 'txn') throw new Error('unexpected apply result');
      const mine = server.kv.get(key);
      if (mine === null) throw Object.assign(new Error('etcdserver: requested lease not found'), { code: status.UNKNOWN });
      const revision = await waitForOlderKeys(server, Buffer.concat([name, Buffer.from('/')]), mine.createRevision, call);
      return { header: ctx.header(revision), key };
    }),

    Unlock: unary(ctx, async (w, call) => {
      const key = bytes(w['key']);
      const request = { key, rangeEnd: EMPTY, prevKv: false };
      const result = await server.propose({ type: 'delete-range', request, auth: await ctx.caller(call) });
      if (result.type !== 'delete-range') throw new Error('unexpected apply result');
      return { header: ctx.header(result.revision) };
    }),
  };
}
