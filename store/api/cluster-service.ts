import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';
import type { Wire } from './codec.js';

/** etcdserverpb.Cluster: the static membership of this cluster. */
export function clusterService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  const members = (): Wire[] =>
    server.members()
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((m) => ({ ID: m.id.toString(), name: m.name, peerURLs: [...m.peerUrls], clientURLs: [...m.clientUrls] }));
  const unsupported = unary(ctx, () => {
    throw Object.assign(new Error('etcron: runtime membership changes are not supported; restart members with a new --initial-cluster'), { code: status.UNIMPLEMENTED });
  });
  return {
    MemberList: unary(ctx, () => ({ header: ctx.headerWithoutRevision(), members: members() })),
    MemberAdd: unsupported,
    MemberRemove: unsupported,
    MemberUpdate: unsupported,
    MemberPromote: unsupported,
  };
}
