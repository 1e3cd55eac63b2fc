import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import { AuthError } from '../auth/errors.js';
import { StoreError } from '../mvcc/errors.js';
import { ETCD_VERSION } from '../server/etcd-server.js';
import type { AlarmKind } from '../server/requests.js';
import type { ApiContext, ServerSurfaceCall } from './context.js';
import { failStream, toServiceError, unary } from './context.js';
import { big, int, type Wire } from './codec.js';

const ALARM_NAMES: Record<AlarmKind, string> = { none: 'NONE', nospace: 'NOSPACE', corrupt: 'CORRUPT' };
const ALARM_BY_NUMBER: readonly AlarmKind[] = ['none', 'nospace', 'corrupt'];
const ALARM_NUMBER: Record<AlarmKind, number> = { none: 0, nospace: 1, corrupt: 2 };
/** etcd streams snapshots in 32 KiB chunks. */
const SNAPSHOT_CHUNK_BYTES = 32 * 1024;

/** etcdserverpb.Maintenance. */
export function maintenanceService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  // etcd 3.4 keeps defragment, snapshot and the hashes to root, and answers a refusal with the
  // auth package's own error, unmapped (code Unknown, "auth: ..."); etcdctl prints it so.
  const requireRoot = async (call: ServerSurfaceCall): Promise<void> => {
    try {
      const auth = await ctx.caller(call);
      server.applier.auth.checkAdmin(auth);
    } catch (err) {
      throw err instanceof AuthError ? err.unmapped() : err;
    }
  };
  return {
    Status: unary(ctx, () => {
      const raft = server.raftStatus();
      const sizes = server.backendSizes();
      return {
        header: ctx.header(),
        version: ETCD_VERSION,
        dbSize: sizes.sizeBytes,
        leader: raft.leader.toString(),
        raftIndex: raft.index,
        raftTerm: raft.term,
        raftAppliedIndex: raft.applied,
        errors: server.alarms().map((a) => `memberID:${a.memberId} alarm:${ALARM_NAMES[a.alarm]} `),
        dbSizeInUse: sizes.inUseBytes,
      };
    }),

    Alarm: unary(ctx, async (w, call) => {
      const action = int(w['action']);
      const alarm = ALARM_BY_NUMBER[int(w['alarm'])] ?? 'none';
      const encode = (list: readonly { memberId: bigint; alarm: AlarmKind }[]): Wire => ({
        alarms: list.map((a) => ({ memberID: a.memberId.toString(), alarm: ALARM_NUMBER[a.alarm] })),
      });
      if (action === 0) return encode(server.alarms());
      const result = await server.propose({
        type: 'alarm', activate: action === 1, memberId: big(w['memberID']), alarm, auth: await ctx.caller(call),
      });
      if (result.type !== 'alarm') throw new Error('unexpected apply result');
      return encode(result.alarms);
    }),

    Defragment: unary(ctx, async (_w, call) => {
      await requireRoot(call);
      await server.maintenance.defragment();
      return {};
    }),

    // Both hash the key-value history only, so members holding the same data agree (a hash of
    // the SQLite file would differ by each member's own vote and page layout).
    Hash: unary(ctx, async (_w, call) => {
      await requireRoot(call);
      return { header: ctx.header(), hash: await server.maintenance.hash() };
    }),

    HashKV: unary(ctx, async (w, call) => {
      await requireRoot(call);
      const requested = int(w['revision']);
      // As etcd: only a positive revision is checked (at or below the compaction point: hashKv
      // refuses it); 0 means current, a negative one hashes nothing.
      if (requested > server.kv.currentRev) throw new StoreError('future-rev');
      const { hash, compactRevision } = await server.maintenance.hashKv(requested);
      return { header: ctx.header(), hash, compact_revision: compactRevision };
    }),

    Snapshot: (call: ServerWritableStream<Wire, Wire>) => {
      if (!ctx.leaderStreams.admit(call)) return;
      const send = async (): Promise<void> => {
        // etcd's own format (a bbolt file) of one consistent state, built a page of rows at a time,
        // then sent as fast as the client takes it (never queued whole in HTTP/2's buffers).
        const data = Buffer.concat(await server.maintenance.etcdSnapshot());
        const digest = createHash('sha256');
        for (let at = 0; at < data.length; at += SNAPSHOT_CHUNK_BYTES) {
          const blob = data.subarray(at, Math.min(data.length, at + SNAPSHOT_CHUNK_BYTES));
          digest.update(blob);
          if (!call.write({ remaining_bytes: data.length - at - blob.length, blob })) {
            await Promise.race([once(call, 'drain'), once(call, 'cancelled'), once(call, 'close')]);
          }
          if (call.cancelled || call.destroyed) return;
        }
        call.write({ remaining_bytes: 0, blob: digest.digest() });
        call.end();
      };
      requireRoot(call).then(send).catch((err: unknown) => {
        failStream(call, toServiceError(err, ctx.log));
      });
    },

    MoveLeader: unary(ctx, (w) => {
      server.moveLeader(big(w['targetID']));
      return {};
    }),
  };
}
