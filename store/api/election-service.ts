import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { KeyValue } from '../mvcc/types.js';
import type { ApiContext } from './context.js';
import { failStream, refusedRequest, toServiceError, unary } from './context.js';
import { big, bytes, encodeKv, int, type Wire } from './codec.js';
import { EMPTY, asUnknown, prefixEnd, rangeOf, unknownError, waitForOlderKeys } from './recipes.js';

/** At most this many leader changes are streamed to one observer before it must call again. */
const OBSERVE_UPDATES_MAX = 1_000_000;

/**
 * v3electionpb.Election: the server side of etcd's election recipe. A candidate's key is
 * `name/<hex lease>`; the oldest key under `name/` leads, and its value is the proclaimed value.
 */
export function electionService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;

  const leaderOf = (name: Buffer): KeyValue | undefined => {
    const prefix = Buffer.concat([name, Buffer.from('/')]);
    return server.range(rangeOf(prefix, prefixEnd(prefix), { sortOrder: 'ascend', sortTarget: 'create', limit: 1 })).result.kvs[0];
  };

  const leaderKey = (w: Wire): { name: Buffer; key: Buffer; rev: number; lease: bigint } => {
    const leader = w['leader'];
    if (typeof leader !== 'object' || leader === null) throw unknownError('"leader" field must be provided');
    const l = leader as Wire;
    return { name: bytes(l['name']), key: bytes(l['key']), rev: int(l['rev']), lease: big(l['lease']) };
  };

  return {
    Campaign: unary(ctx, async (w, call) => {
      const name = bytes(w['name']);
      const lease = big(w['lease']);
      const value = bytes(w['value']);
      const key = Buffer.concat([name, Buffer.from(`/${lease.toString(16)}`)]);
      const put = { key, value, lease, prevKv: false, ignoreValue: false, ignoreLease: false };
      await server
        .propose({
          type: 'txn',
          auth: await ctx.caller(call),
          request: {
            compare: [{ key, rangeEnd: EMPTY, target: 'create', result: 'equal', operand: 0 }],
            success: [{ type: 'put', request: put }],
            failure: [{ type: 'range', request: rangeOf(key, EMPTY) }],
          },
        })
        .catch(asUnknown);
      let mine = server.kv.get(key);
      if (mine === null) throw unknownError('etcdserver: requested lease not found');
      if (!mine.value.equals(value)) {
        await server.propose({ type: 'put', request: put, auth: await ctx.caller(call) }).catch(asUnknown);
        mine = server.kv.get(key) ?? mine;
      }
      const revision = await waitForOlderKeys(server, Buffer.concat([name, Buffer.from('/')]), mine.createRevision, call);
      return { header: ctx.header(revision), leader: { name, key, rev: mine.createRevision, lease: lease.toString() } };
    }),

    Proclaim: unary(ctx, async (w, call) => {
      const leader = leaderKey(w);
      const value = bytes(w['value']);
      const result = await server
        .propose({
          type: 'txn',
          auth: await ctx.caller(call),
          request: {
            compare: [{ key: leader.key, rangeEnd: EMPTY, target: 'create', result: 'equal', operand: leader.rev }],
            success: [{ type: 'put', request: { key: leader.key, value, lease: leader.lease, prevKv: false, ignoreValue: false, ignoreLease: false } }],
            failure: [],
          },
        })
        .catch(asUnknown);
      if (result.type !== 'txn' || !result.result.succeeded) throw unknownError('election: not leader');
      return { header: ctx.header(result.result.revision) };
    }),

    Leader: unary(ctx, async (w) => {
      await server.readBarrier();
      const kv = leaderOf(bytes(w['name']));
      if (kv === undefined) throw unknownError('election: no leader');
      return { header: ctx.header(), kv: encodeKv(kv) };
    }),

    Observe: (call: ServerWritableStream<Wire, Wire>) => {
      const refused = refusedRequest(call.request);
      if (refused !== null) {
        failStream(call, refused);
        return;
      }
      if (!ctx.leaderStreams.admit(call)) return;
      const name = bytes(call.request['name']);
      const prefix = Buffer.concat([name, Buffer.from('/')]);
      let last: KeyValue | undefined;
      let sent = 0;
      const report = (): void => {
        const now = leaderOf(name);
        if (now === undefined || (last !== undefined && last.key.equals(now.key) && last.modRevision === now.modRevision)) return;
        last = now;
        call.write({ header: ctx.header(), kv: encodeKv(now) });
        if (++sent >= OBSERVE_UPDATES_MAX) call.end();
      };
      // Only changes matter, not each event: a watcher overtaken by a compaction (after a
      // snapshot install) reports the leader as it is now and watches on from there.
      const watchFromNow = (): { cancel(): void } => server.watch({
        key: prefix, rangeEnd: prefixEnd(prefix), startRev: server.kv.currentRev + 1, noPut: false, noDelete: false, prevKv: false,
        deliver: report,
        compacted: () => {
          watcher = watchFromNow();
          report();
        },
      });
      let watcher = watchFromNow();
      call.on('cancelled', () => watcher.cancel());
      call.on('close', () => watcher.cancel());
      server.readBarrier().then(report, (err: unknown) => {
        watcher.cancel();
        failStream(call, toServiceError(err, ctx.log));
      });
    },

    Resign: unary(ctx, async (w, call) => {
      const leader = leaderKey(w);
      const result = await server.propose({
        type: 'txn',
        auth: await ctx.caller(call),
        request: {
          compare: [{ key: leader.key, rangeEnd: EMPTY, target: 'create', result: 'equal', operand: leader.rev }],
          success: [{ type: 'delete-range', request: { key: leader.key, rangeEnd: EMPTY, prevKv: false } }],
          failure: [],
        },
      });
      return { header: ctx.header(result.type === 'txn' ? result.result.revision : undefined) };
    }),
  };
}
