import { createHash } from 'node:crypto';
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ApiContext, ServerSurfaceCall } from './context.js';
import { unary } from './context.js';
import { big, type Wire } from './codec.js';
import { MemberChangeError } from '../server/membership-table.js';
import type { EtcdServer, MemberInfo } from '../server/etcd-server.js';

/** etcd 3.4 allows one learner at a time. */
const LEARNERS_MAX = 1;
/** A learner may be promoted once it holds at least this share of the leader's log. */
const LEARNER_READY_RATIO = 0.9;

function isHostPortUrl(raw: string): boolean {
  try {
    const url = new URL(raw);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.port !== '';
  } catch {
    return false;
  }
}

function refusal(code: status, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const NOT_ENOUGH_STARTED = 'etcdserver: re-configuration failed due to not enough started members';
const UNHEALTHY = 'etcdserver: unhealthy cluster';
/** etcd's HealthInterval: a peer counts as connected once its connection has been up this long. */
const HEALTH_INTERVAL_MS = 5_000;

function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** etcd's member ID for an added member: SHA-1 over its peer URLs, the cluster and the time. */
function newMemberId(peerUrls: readonly string[], clusterId: bigint, nowMs: number): bigint {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].sort()) hash.update(url);
  hash.update(clusterId.toString(16));
  hash.update(String(Math.floor(nowMs / 1000)));
  return hash.digest().readBigUInt64BE(0);
}

function memberWire(m: MemberInfo): Wire {
  return {
    ID: m.id.toString(), name: m.name, peerURLs: [...m.peerUrls], clientURLs: [...m.clientUrls],
    ...(m.isLearner === true ? { isLearner: true } : {}),
  };
}

/**
 * etcdserverpb.Cluster: the member list and runtime membership changes (MemberAdd, MemberRemove,
 * MemberUpdate, MemberPromote), each through the Raft log as a conf-change entry, one at a time.
 * With --strict-reconfig-check a change that would leave fewer started voters than a quorum is
 * refused, as etcd does ("started": the member has published its name since it started).
 */
export function clusterService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  const members = (): Wire[] =>
    server.members().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(memberWire);
  const isStrict = server.config.strictReconfigCheck !== false;
  const checkUrls = (w: Wire): string[] => {
    const urls = Array.isArray(w['peerURLs']) ? (w['peerURLs'] as unknown[]) : [];
    const valid = urls.length > 0 && urls.every((u) => typeof u === 'string' && isHostPortUrl(u));
    if (!valid) throw refusal(status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid');
    return urls as string[];
  };
  const checkUnused = (urls: readonly string[], except?: bigint): void => {
    const inUse = new Set(server.members().filter((m) => m.id !== except).flatMap((m) => m.peerUrls));
    if (urls.some((u) => inUse.has(u))) throw refusal(status.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists');
  };
  const existing = (w: Wire): MemberInfo => {
    const id = big(w['ID']);
    const member = server.members().find((m) => m.id === id);
    if (member === undefined) throw refusal(status.NOT_FOUND, 'etcdserver: member not found');
    return member;
  };
  // As etcd: membership changes need the root role once auth is on (checked after the URLs).
  const requireAdmin = async (call: ServerSurfaceCall): Promise<void> => {
    server.applier.auth.checkAdmin(await ctx.caller(call));
  };
  const change = async (request: Parameters<EtcdServer['proposeMemberChange']>[0]): Promise<void> => {
    try {
      await server.proposeMemberChange(request);
    } catch (err) {
      if (err instanceof MemberChangeError) {
        throw refusal(err.kind === 'member-not-found' ? status.NOT_FOUND : status.FAILED_PRECONDITION, err.message);
      }
      throw err;
    }
  };
  const startedVoters = (): MemberInfo[] => server.members().filter((m) => m.isLearner !== true && m.name !== '');
  const voters = (): MemberInfo[] => server.members().filter((m) => m.isLearner !== true);
  const isConnected = (m: MemberInfo): boolean => server.connectedForMs(m.id) >= HEALTH_INTERVAL_MS;

  return {
    MemberList: unary(ctx, () => ({ header: ctx.headerWithoutRevision(), members: members() })),

    MemberAdd: unary(ctx, async (w, call) => {
      const peerUrls = checkUrls(w);
      await requireAdmin(call);
      checkUnused(peerUrls);
      await server.becomeRaftGroup();
      const isLearner = w['isLearner'] === true;
      if (isLearner && server.members().filter((m) => m.isLearner === true).length >= LEARNERS_MAX) {
        throw refusal(status.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster');
      }
      // A new voter counts against the quorum at once, though it has not started yet; etcd lets
      // a one-member cluster add a second member all the same (how a cluster grows from one).
      const started = startedVoters().length;
      const isSecond = started === 1 && voters().length === 1;
      if (isStrict && !isLearner && !isSecond && started < quorum(voters().length + 1)) {
        throw refusal(status.FAILED_PRECONDITION, NOT_ENOUGH_STARTED);
      }
      // As etcd: no change while a voter has not been reachable from here for the last 5 s.
      if (isStrict && !voters().every(isConnected)) throw refusal(status.UNAVAILABLE, UNHEALTHY);
      const id = newMemberId(peerUrls, server.config.clusterId, Date.now());
      await change({ action: 'add', id, peerUrls, isLearner });
      return {
        header: ctx.headerWithoutRevision(),
        member: { ID: id.toString(), peerURLs: peerUrls, ...(isLearner ? { isLearner: true } : {}) },
        members: members(),
      };
    }),

    MemberRemove: unary(ctx, async (w, call) => {
      await requireAdmin(call);
      const member = existing(w);
      await server.becomeRaftGroup();
      if (isStrict && member.isLearner !== true) {
        const startedAfter = startedVoters().filter((m) => m.id !== member.id).length;
        if (startedAfter < quorum(voters().length - 1)) throw refusal(status.FAILED_PRECONDITION, NOT_ENOUGH_STARTED);
        // A member that is down may go (it is not part of the working quorum); otherwise the
        // members reachable for 5 s, less the one leaving, must still be a quorum.
        const isDown = member.id !== server.memberId && server.connectedForMs(member.id) === 0;
        const active = voters().filter(isConnected).length;
        const n = voters().length;
        if (!isDown && active - 1 < 1 + Math.floor((n - 1) / 2)) {
          throw refusal(status.UNAVAILABLE, UNHEALTHY);
        }
      }
      await change({ action: 'remove', id: member.id });
      return { header: ctx.headerWithoutRevision(), members: members() };
    }),

    MemberUpdate: unary(ctx, async (w, call) => {
      const peerUrls = checkUrls(w);
      await requireAdmin(call);
      const member = existing(w);
      checkUnused(peerUrls, member.id);
      await server.becomeRaftGroup();
      await change({ action: 'update', id: member.id, peerUrls });
      return { header: ctx.headerWithoutRevision(), members: members() };
    }),

    MemberPromote: unary(ctx, async (w, call) => {
      await requireAdmin(call);
      const member = existing(w);
      if (member.isLearner !== true) throw refusal(status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
      await server.becomeRaftGroup();
      // Only the leader knows how far the learner got; followers let the change through.
      const progress = server.matchIndexOf(member.id);
      if (progress !== null && progress.match < progress.leaderMatch * LEARNER_READY_RATIO) {
        throw refusal(status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader');
      }
      await change({ action: 'promote', id: member.id });
      return { header: ctx.headerWithoutRevision(), members: members() };
    }),
  };
}
