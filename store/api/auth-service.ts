import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';

/**
 * etcdserverpb.Auth while authentication is disabled: Authenticate answers as etcd does (clients
 * then carry on without a token); user and role management is not supported yet (issue #7).
 */
export function authService(ctx: ApiContext): UntypedServiceImplementation {
  const notEnabled = unary(ctx, () => {
    throw Object.assign(new Error('etcdserver: authentication is not enabled'), { code: status.FAILED_PRECONDITION });
  });
  const unsupported = unary(ctx, () => {
    throw Object.assign(new Error('etcron: user and role management is not supported yet'), { code: status.UNIMPLEMENTED });
  });
  return {
    AuthEnable: unsupported,
    AuthDisable: unary(ctx, () => ({ header: ctx.header() })),
    Authenticate: notEnabled,
    UserAdd: unsupported, UserGet: unsupported, UserList: unsupported, UserDelete: unsupported,
    UserChangePassword: unsupported, UserGrantRole: unsupported, UserRevokeRole: unsupported,
    RoleAdd: unsupported, RoleGet: unsupported, RoleList: unsupported, RoleDelete: unsupported,
    RoleGrantPermission: unsupported, RoleRevokePermission: unsupported,
  };
}
