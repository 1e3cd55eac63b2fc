import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';
import { big, type Wire } from './codec.js';

function isHostPortUrl(raw: string): boolean {
  try {
    const url = new URL(raw);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.port !== '';
  } catch {
    return false;
  }
}

/** etcdserverpb.Cluster: the static membership of this cluster. */
export function clusterService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  const members = (): Wire[] =>
    server.members()
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((m) => ({ ID: m.id.toString(), name: m.name, peerURLs: [...m.peerUrls], clientURLs: [...m.clientUrls] }));
  const unsupported = (): never => {
    throw Object.assign(new Error('etcron: runtime membership changes are not supported; restart members with a new --initial-cluster'), { code: status.UNIMPLEMENTED });
  };
  // Requests etcd would refuse get etcd's refusal; valid ones reach the missing feature.
  const checkUrls = (w: Wire): void => {
    const urls = Array.isArray(w['peerURLs']) ? (w['peerURLs'] as unknown[]) : [];
    const valid = urls.length > 0 && urls.every((u) => typeof u === 'string' && isHostPortUrl(u));
    if (!valid) throw Object.assign(new Error('etcdserver: given member URLs are invalid'), { code: status.INVALID_ARGUMENT });
    const inUse = new Set(server.members().flatMap((m) => m.peerUrls));
    if (urls.some((u) => inUse.has(u as string))) throw Object.assign(new Error('etcdserver: Peer URLs already exists'), { code: status.FAILED_PRECONDITION });
  };
  const checkMember = (w: Wire): void => {
    const id = big(w['ID']);
    if (!server.members().some((m) => m.id === id)) throw Object.assign(new Error('etcdserver: member not found'), { code: status.NOT_FOUND });
  };
  return {
    MemberList: unary(ctx, () => ({ header: ctx.headerWithoutRevision(), members: members() })),
    MemberAdd: unary(ctx, (w) => { checkUrls(w); return unsupported(); }),
    MemberRemove: unary(ctx, (w) => { checkMember(w); return unsupported(); }),
    MemberUpdate: unary(ctx, (w) => { checkMember(w); checkUrls(w); return unsupported(); }),
    MemberPromote: unary(ctx, (w) => {
      checkMember(w);
      throw Object.assign(new Error('etcdserver: can only promote a learner member'), { code: status.FAILED_PRECONDITION });
    }),
  };
}
