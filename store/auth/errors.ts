import { status } from '@grpc/grpc-js';

/** Refusals of the auth store; each has etcd's gRPC code and text, and its raw `auth:` text. */
export type AuthErrorKind =
  | 'root-user-not-exist'
  | 'root-role-not-exist'
  | 'user-already-exist'
  | 'user-empty'
  | 'user-not-found'
  | 'role-already-exist'
  | 'role-not-found'
  | 'role-empty'
  | 'auth-failed'
  | 'no-password-user'
  | 'permission-denied'
  | 'role-not-granted'
  | 'permission-not-granted'
  | 'auth-not-enabled'
  | 'auth-old-revision'
  | 'invalid-auth-token'
  | 'invalid-auth-mgmt';

/**
 * [gRPC code, etcd's client-facing text, the auth package's own text]. Most RPCs answer with the
 * first two (etcd maps them in v3rpc); the maintenance RPCs that need root pass the auth package's
 * error through unmapped, which clients see as code Unknown with the `auth:` text.
 */
const AUTH_ERROR_WIRE: Record<AuthErrorKind, readonly [status, string, string]> = {
  'root-user-not-exist': [
    status.FAILED_PRECONDITION,
    'etcdserver: root user does not exist',
    'auth: root user does not exist',
  ],
  'root-role-not-exist': [
    status.FAILED_PRECONDITION,
    'etcdserver: root user does not have root role',
    'auth: root user does not have root role',
  ],
  'user-already-exist': [
    status.FAILED_PRECONDITION,
    'etcdserver: user name already exists',
    'auth: user already exists',
  ],
  'user-empty': [
    status.INVALID_ARGUMENT,
    'etcdserver: user name is empty',
    'auth: user name is empty',
  ],
  'user-not-found': [
    status.FAILED_PRECONDITION,
    'etcdserver: user name not found',
    'auth: user not found',
  ],
  'role-already-exist': [
    status.FAILED_PRECONDITION,
    'etcdserver: role name already exists',
    'auth: role already exists',
  ],
  'role-not-found': [
    status.FAILED_PRECONDITION,
    'etcdserver: role name not found',
    'auth: role not found',
  ],
  'role-empty': [
    status.INVALID_ARGUMENT,
    'etcdserver: role name is empty',
    'auth: role name is empty',
  ],
  'auth-failed': [
    status.INVALID_ARGUMENT,
    'etcdserver: authentication failed, invalid user ID or password',
    'auth: authentication failed, invalid user ID or password',
  ],
  // etcd has no client-facing form of this one: it reaches clients unmapped.
  'no-password-user': [
    status.UNKNOWN,
    'auth: authentication failed, password was given for no password user',
    'auth: authentication failed, password was given for no password user',
  ],
  'permission-denied': [
    status.PERMISSION_DENIED,
    'etcdserver: permission denied',
    'auth: permission denied',
  ],
  'role-not-granted': [
    status.FAILED_PRECONDITION,
    'etcdserver: role is not granted to the user',
    'auth: role is not granted to the user',
  ],
  'permission-not-granted': [
    status.FAILED_PRECONDITION,
    'etcdserver: permission is not granted to the role',
    'auth: permission is not granted to the role',
  ],
  'auth-not-enabled': [
    status.FAILED_PRECONDITION,
    'etcdserver: authentication is not enabled',
    'auth: authentication is not enabled',
  ],
  'auth-old-revision': [
    status.INVALID_ARGUMENT,
    'etcdserver: revision of auth store is old',
    'auth: revision in header is old',
  ],
  'invalid-auth-token': [
    status.UNAUTHENTICATED,
    'etcdserver: invalid auth token',
    'auth: invalid auth token',
  ],
  'invalid-auth-mgmt': [
    status.INVALID_ARGUMENT,
    'etcdserver: invalid auth management',
    'auth: invalid auth management',
  ],
};

/**
 * An auth refusal. `code` and `message` are what etcd's clients see, so the API layer's generic
 * error mapping (store/api/context.ts toServiceError) answers with them as they are.
 */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly code: status;

  constructor(readonly kind: AuthErrorKind) {
    const [code, message] = AUTH_ERROR_WIRE[kind];
    super(message);
    this.code = code;
  }

  /** The same refusal as etcd's maintenance RPCs return it: code Unknown, the auth package's text. */
  unmapped(): Error & { code: status } {
    return Object.assign(new Error(AUTH_ERROR_WIRE[this.kind][2]), { code: status.UNKNOWN });
  }

  /** The text of the gRPC status error as Go prints it, used as a watch's cancel reason. */
  grpcText(): string {
    return `rpc error: code = ${GO_CODE_NAMES[this.code] ?? 'Unknown'} desc = ${this.message}`;
  }
}

const GO_CODE_NAMES: Partial<Record<status, string>> = {
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};
