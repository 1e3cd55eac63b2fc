import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { AuthError } from '../auth/errors.js';
import { hashPassword, verifyPassword } from '../auth/password.js';
import { PERMISSION_TYPES, type Permission } from '../auth/permissions.js';
import type { AuthOp, AuthOpResult } from '../auth/requests.js';
import { newTokenPrefix } from '../auth/token-store.js';
import { bool, bytes, int, type Wire } from './codec.js';
import type { ApiContext } from './context.js';
import { unary } from './context.js';

/** Authenticate retries when the auth store changed while the password was being checked. */
const AUTHENTICATE_ATTEMPTS_MAX = 5;

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function object(value: unknown): Wire {
  return typeof value === 'object' && value !== null ? (value as Wire) : {};
}

function decodePermission(w: Wire): Permission {
  return {
    type: PERMISSION_TYPES[int(w['permType'])] ?? 'read',
    key: bytes(w['key']),
    rangeEnd: bytes(w['range_end']),
  };
}

function encodePermission(permission: Permission): Wire {
  return {
    permType: PERMISSION_TYPES.indexOf(permission.type),
    key: permission.key,
    range_end: permission.rangeEnd,
  };
}

/**
 * etcdserverpb.Auth. Every request goes through the log, reads included, as etcd does: the
 * sender's permission is decided at apply. Passwords are hashed here, before proposing, so the
 * log holds hashes and applying stays deterministic.
 */
export function authService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;

  const propose = async (
    call: ServerUnaryCall<Wire, Wire>,
    op: AuthOp,
  ): Promise<{ result: AuthOpResult; header: Wire }> => {
    const outcome = await server.propose({ type: 'auth', op, auth: await ctx.caller(call) });
    if (outcome.type !== 'auth') throw new Error('unexpected apply result');
    return { result: outcome.result, header: ctx.header(outcome.revision) };
  };
  const done = (toOp: (w: Wire) => AuthOp | Promise<AuthOp>) =>
    unary(ctx, async (w, call) => {
      const { header } = await propose(call, await toOp(w));
      return { header };
    });
  const names = (result: AuthOpResult): string[] =>
    result.kind === 'names' ? [...result.names] : [];

  return {
    AuthEnable: done(() => ({ kind: 'enable' })),
    AuthDisable: done(() => ({ kind: 'disable' })),

    Authenticate: unary(ctx, async (w, call) => {
      const name = text(w['name']);
      const password = text(w['password']);
      await server.readBarrier();
      for (let attempt = 0; attempt < AUTHENTICATE_ATTEMPTS_MAX; attempt++) {
        const store = server.applier.auth;
        if (!store.enabled) throw new AuthError('auth-not-enabled');
        const hash = store.passwordHashOf(name);
        if (hash === undefined) throw new AuthError('auth-failed');
        if (hash === null) throw new AuthError('no-password-user');
        const checkedRevision = store.revision;
        if (!(await verifyPassword(password, hash))) throw new AuthError('auth-failed');
        // The token's letters are drawn here; the log carries them so every member knows the token.
        const { result, header } = await propose(call, {
          kind: 'authenticate',
          name,
          tokenPrefix: newTokenPrefix(),
        });
        if (checkedRevision === server.applier.auth.revision && result.kind === 'token') {
          // Under --auth-token jwt the answer is a JWT signed here (the simple token the apply
          // made for every member is never handed out).
          const token = server.jwt === null ? result.token : server.jwt.issue({ username: name, revision: checkedRevision });
          return { header, token };
        }
      }
      throw new AuthError('auth-old-revision');
    }),

    UserAdd: done(async (w) => {
      const noPassword = bool(object(w['options'])['no_password']);
      const name = text(w['name']);
      // An empty name is refused at apply (after the sender's admin check); no need to hash for it.
      const passwordHash = noPassword
        ? null
        : name === ''
          ? ''
          : await hashPassword(text(w['password']));
      return { kind: 'user-add', name, passwordHash };
    }),
    UserGet: unary(ctx, async (w, call) => {
      const { result, header } = await propose(call, { kind: 'user-get', name: text(w['name']) });
      return { header, roles: names(result) };
    }),
    UserList: unary(ctx, async (_w, call) => {
      const { result, header } = await propose(call, { kind: 'user-list' });
      return { header, users: names(result) };
    }),
    UserDelete: done((w) => ({ kind: 'user-delete', name: text(w['name']) })),
    UserChangePassword: done(async (w) => ({
      kind: 'user-change-password',
      name: text(w['name']),
      passwordHash: await hashPassword(text(w['password'])),
    })),
    UserGrantRole: done((w) => ({
      kind: 'user-grant-role',
      user: text(w['user']),
      role: text(w['role']),
    })),
    UserRevokeRole: done((w) => ({
      kind: 'user-revoke-role',
      name: text(w['name']),
      role: text(w['role']),
    })),

    RoleAdd: done((w) => ({ kind: 'role-add', name: text(w['name']) })),
    RoleGet: unary(ctx, async (w, call) => {
      const { result, header } = await propose(call, { kind: 'role-get', role: text(w['role']) });
      return {
        header,
        perm: result.kind === 'permissions' ? result.permissions.map(encodePermission) : [],
      };
    }),
    RoleList: unary(ctx, async (_w, call) => {
      const { result, header } = await propose(call, { kind: 'role-list' });
      return { header, roles: names(result) };
    }),
    RoleDelete: done((w) => ({ kind: 'role-delete', role: text(w['role']) })),
    RoleGrantPermission: done((w) => ({
      kind: 'role-grant-permission',
      name: text(w['name']),
      permission: decodePermission(object(w['perm'])),
    })),
    RoleRevokePermission: done((w) => ({
      kind: 'role-revoke-permission',
      role: text(w['role']),
      key: bytes(w['key']),
      rangeEnd: bytes(w['range_end']),
    })),
  };
}
