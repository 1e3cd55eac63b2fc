import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { StoreError } from '../mvcc/errors.js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';
import {
  bool, decodeDeleteRange, decodePut, decodeRange, decodeTxn, encodeKv, encodeTxnResult, int, type Wire,
} from './codec.js';
import { checkDeleteRange, checkPut, checkRange, checkTxn } from './validate.js';
import type { TxnRequest } from '../mvcc/types.js';

function txnIsReadOnly(request: TxnRequest): boolean {
  const ops = [...request.success, ...request.failure];
  return ops.every((op) => op.type === 'range' || (op.type === 'txn' && txnIsReadOnly(op.request)));
}

function txnHasPut(request: TxnRequest): boolean {
  return [...request.success, ...request.failure].some((op) => op.type === 'put' || (op.type === 'txn' && txnHasPut(op.request)));
}

/** etcdserverpb.KV: reads are served from memory, writes go through the log. */
export function kvService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  return {
    Range: unary(ctx, async (w, call) => {
      const request = decodeRange(w);
      checkRange(request);
      if (!request.serializable) await server.readBarrier();
      // Reads are served here, not applied: the permission check happens here too, as in etcd.
      const auth = await ctx.caller(call);
      server.applier.auth.checkKeys(auth, 'read', request.key, request.rangeEnd);
      const { result, revision } = server.range(request);
      return { header: ctx.header(revision), kvs: result.kvs.map(encodeKv), more: result.more, count: result.count };
    }),

    Put: unary(ctx, async (w, call) => {
      const request = decodePut(w);
      checkPut(request, ctx.limits);
      await server.checkQuota();
      const result = await server.propose({ type: 'put', request, auth: await ctx.caller(call) });
      if (result.type !== 'put') throw new Error('unexpected apply result');
      const out: Wire = { header: ctx.header(result.revision) };
      if (result.prevKv !== null) out['prev_kv'] = encodeKv(result.prevKv);
      return out;
    }),

    DeleteRange: unary(ctx, async (w, call) => {
      const request = decodeDeleteRange(w);
      checkDeleteRange(request);
      const result = await server.propose({ type: 'delete-range', request, auth: await ctx.caller(call) });
      if (result.type !== 'delete-range') throw new Error('unexpected apply result');
      return { header: ctx.header(result.revision), deleted: result.deleted, prev_kvs: result.prevKvs.map(encodeKv) };
    }),

    Txn: unary(ctx, async (w, call) => {
      const request = decodeTxn(w);
      checkTxn(request, ctx.limits);
      if (txnHasPut(request)) await server.checkQuota();
      if (txnIsReadOnly(request)) {
        // Read-only txns need no consensus, as in etcd; they still see one consistent revision.
        await server.readBarrier();
        const auth = await ctx.caller(call);
        const result = server.applier.apply({ type: 'txn', request, auth });
        if (!result.ok) throw result.error;
        if (result.value.type !== 'txn') throw new Error('unexpected apply result');
        return encodeTxnResult(result.value.result, ctx.header(result.value.result.revision));
      }
      const result = await server.propose({ type: 'txn', request, auth: await ctx.caller(call) });
      if (result.type !== 'txn') throw new Error('unexpected apply result');
      return encodeTxnResult(result.result, ctx.header(result.result.revision));
    }),

    Compact: unary(ctx, async (w, call) => {
      const revision = int(w['revision']);
      // etcd 3.4 lets any user compact; an unknown token is still refused.
      const result = await server.propose({ type: 'compact', revision, auth: await ctx.caller(call) });
      if (result.type !== 'compact') throw new StoreError('compacted');
      // physical: etcd answers once this member has removed the compacted rows.
      if (bool(w['physical'])) await server.compactionSettled();
      return { header: ctx.header(result.revision) };
    }),
  };
}
