import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';

/** The long-lived streams whose silence would go unnoticed on a member cut off from its leader. */
const LEADER_REQUIRED_PATHS = new Set(['/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive']);

/**
 * clientv3's WithRequireLeader for watches and lease keep-alives: with `hasleader: true` a member
 * that has lost its leader refuses the stream, or ends it ("etcdserver: no leader"), instead of
 * delivering nothing. The stream is then re-opened, and lands on a member that has a leader.
 * (The pool hands every call the same metadata object, so it is copied, not changed.)
 */
export const requireLeaderOnStreams: Interceptor = (options, nextCall) => {
  if (!LEADER_REQUIRED_PATHS.has(options.method_definition.path)) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      const withLeader = metadata.clone();
      withLeader.set('hasleader', 'true');
      next(withLeader, listener);
    },
  });
};
