import { unreachable } from '../../shared/assert.js';
import type { Backend } from '../mvcc/backend.js';
import { AuthError } from './errors.js';
import { MergedPermissions, type Permission, type PermissionType } from './permissions.js';
import type { AuthOp, AuthOpResult, RequestAuth } from './requests.js';
import { simpleToken, type SimpleTokenStore } from './token-store.js';

const ROOT_USER = 'root';
const ROOT_ROLE = 'root';

interface User {
  readonly name: string;
  /** null: the user was added with no_password and cannot authenticate with one. */
  readonly passwordHash: string | null;
  /** Sorted by bytes, as etcd keeps them. */
  readonly roles: readonly string[];
}

interface Role {
  readonly name: string;
  /** Sorted by key, as etcd keeps them. */
  readonly permissions: readonly Permission[];
}

interface StoredPermission {
  readonly type: PermissionType;
  readonly key: string;
  readonly rangeEnd: string;
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * etcd's auth store: users, roles, the enabled flag and the auth revision (bumped by every change
 * that can alter a permission decision). Changed only by apply(), inside the transaction of the
 * entry being applied, so that a replay after a crash or a snapshot restores exactly this state.
 * Reads (permission checks, password lookups) come from memory.
 */
export class AuthStore {
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  /** Per-user union of role grants; dropped whenever a user or role changes. */
  private readonly merged = new Map<string, MergedPermissions>();
  private enabledFlag: boolean;
  private revisionNumber: number;

  constructor(
    private readonly backend: Backend,
    private readonly tokens: SimpleTokenStore,
  ) {
    for (const row of backend.authRows()) {
      const name = row.name.toString();
      if (row.kind === 'user') {
        const stored = JSON.parse(row.value) as { passwordHash: string | null; roles: string[] };
        this.users.set(name, { name, passwordHash: stored.passwordHash, roles: stored.roles });
      } else {
        const stored = JSON.parse(row.value) as { permissions: StoredPermission[] };
        const permissions = stored.permissions.map((p) => ({
          type: p.type,
          key: Buffer.from(p.key, 'base64'),
          rangeEnd: Buffer.from(p.rangeEnd, 'base64'),
        }));
        this.roles.set(name, { name, permissions });
      }
    }
    this.enabledFlag = backend.getMetaNumber('auth_enabled', 0) === 1;
    // etcd starts the auth revision at 1; 0 means "no credentials" in a request.
    this.revisionNumber = backend.getMetaNumber('auth_revision', 1);
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  get revision(): number {
    return this.revisionNumber;
  }

  /** The stored hash of a user: undefined if no such user, null if it has no password. */
  passwordHashOf(name: string): string | null | undefined {
    return this.users.get(name)?.passwordHash;
  }

  /** etcd's IsAdminPermitted: with auth enabled, only a user holding the root role. */
  checkAdmin(auth: RequestAuth | undefined): void {
    if (auth === undefined || !this.enabledFlag) return;
    if (auth.username === '') throw new AuthError('user-empty');
    const user = this.users.get(auth.username);
    if (user === undefined) throw new AuthError('user-not-found');
    if (!user.roles.includes(ROOT_ROLE)) throw new AuthError('permission-denied');
  }

  isAdmin(auth: RequestAuth | undefined): boolean {
    try {
      this.checkAdmin(auth);
      return true;
    } catch (err) {
      if (err instanceof AuthError) return false;
      throw err;
    }
  }

  /**
   * etcd's isOpPermitted: may this request read or write these keys? A request checked against an
   * auth revision older than the store's is refused, so a permission revoked between proposal and
   * apply takes effect. `rangeEnd` follows the request's form (empty, "\0" or an end key).
   */
  checkKeys(
    auth: RequestAuth | undefined,
    kind: 'read' | 'write',
    key: Buffer,
    rangeEnd: Buffer,
  ): void {
    if (auth === undefined || !this.enabledFlag) return;
    if (auth.revision === 0) throw new AuthError('user-empty');
    if (auth.revision < this.revisionNumber) throw new AuthError('auth-old-revision');
    const user = this.users.get(auth.username);
    if (user === undefined) throw new AuthError('permission-denied');
    if (user.roles.includes(ROOT_ROLE)) return;
    if (!this.permissionsOf(user).allows(kind, key, rangeEnd))
      throw new AuthError('permission-denied');
  }

  /** Applies one committed auth request; `index` is its log index (simple tokens carry it). */
  apply(op: AuthOp, auth: RequestAuth | undefined, index: number): AuthOpResult {
    switch (op.kind) {
      case 'authenticate':
        return this.authenticate(op.name, op.tokenPrefix, index);
      case 'user-get': {
        if (!this.isAdmin(auth) && op.name !== auth?.username) this.checkAdmin(auth);
        const user = this.users.get(op.name);
        if (user === undefined) throw new AuthError('user-not-found');
        return { kind: 'names', names: [...user.roles] };
      }
      case 'role-get': {
        if (!this.isAdmin(auth) && !this.hasRole(auth?.username ?? '', op.role))
          this.checkAdmin(auth);
        const role = this.roles.get(op.role);
        if (role === undefined) throw new AuthError('role-not-found');
        return { kind: 'permissions', permissions: [...role.permissions] };
      }
      default:
        this.checkAdmin(auth);
        return this.applyManagement(op);
    }
  }

  private applyManagement(
    op: Exclude<AuthOp, { kind: 'authenticate' | 'user-get' | 'role-get' }>,
  ): AuthOpResult {
    switch (op.kind) {
      case 'enable':
        return this.enable();
      case 'disable':
        return this.disable();
      case 'user-add':
        return this.userAdd(op.name, op.passwordHash);
      case 'user-list':
        return { kind: 'names', names: [...this.users.keys()].sort(byBytes) };
      case 'user-delete':
        return this.userDelete(op.name);
      case 'user-change-password':
        return this.userChangePassword(op.name, op.passwordHash);
      case 'user-grant-role':
        return this.userGrantRole(op.user, op.role);
      case 'user-revoke-role':
        return this.userRevokeRole(op.name, op.role);
      case 'role-add':
        return this.roleAdd(op.name);
      case 'role-list':
        return { kind: 'names', names: [...this.roles.keys()].sort(byBytes) };
      case 'role-delete':
        return this.roleDelete(op.role);
      case 'role-grant-permission':
        return this.roleGrantPermission(op.name, op.permission);
      case 'role-revoke-permission':
        return this.roleRevokePermission(op.role, op.key, op.rangeEnd);
      default:
        return unreachable(op, 'auth request');
    }
  }

  private hasRole(username: string, role: string): boolean {
    return this.users.get(username)?.roles.includes(role) ?? false;
  }

  private permissionsOf(user: User): MergedPermissions {
    let merged = this.merged.get(user.name);
    if (merged === undefined) {
      merged = new MergedPermissions(
        user.roles.flatMap((name) => this.roles.get(name)?.permissions ?? []),
      );
      this.merged.set(user.name, merged);
    }
    return merged;
  }

  private authenticate(name: string, tokenPrefix: string, index: number): AuthOpResult {
    if (!this.enabledFlag) throw new AuthError('auth-not-enabled');
    const user = this.users.get(name);
    if (user === undefined || user.passwordHash === null) throw new AuthError('auth-failed');
    const token = simpleToken(tokenPrefix, index);
    this.tokens.assign(token, name);
    return { kind: 'token', token };
  }

  private enable(): AuthOpResult {
    if (this.enabledFlag) return { kind: 'done' };
    const root = this.users.get(ROOT_USER);
    if (root === undefined) throw new AuthError('root-user-not-exist');
    if (!root.roles.includes(ROOT_ROLE)) throw new AuthError('root-role-not-exist');
    this.enabledFlag = true;
    this.backend.setMeta('auth_enabled', 1);
    return { kind: 'done' };
  }

  private disable(): AuthOpResult {
    if (!this.enabledFlag) return { kind: 'done' };
    this.enabledFlag = false;
    this.backend.setMeta('auth_enabled', 0);
    this.tokens.clear();
    this.bumpRevision();
    return { kind: 'done' };
  }

  private userAdd(name: string, passwordHash: string | null): AuthOpResult {
    if (name === '') throw new AuthError('user-empty');
    if (this.users.has(name)) throw new AuthError('user-already-exist');
    this.putUser({ name, passwordHash, roles: [] });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private userDelete(name: string): AuthOpResult {
    if (this.enabledFlag && name === ROOT_USER) throw new AuthError('invalid-auth-mgmt');
    if (!this.users.has(name)) throw new AuthError('user-not-found');
    this.users.delete(name);
    this.backend.deleteAuthRow('user', Buffer.from(name));
    this.bumpRevision();
    this.tokens.invalidateUser(name);
    return { kind: 'done' };
  }

  private userChangePassword(name: string, passwordHash: string): AuthOpResult {
    const user = this.users.get(name);
    if (user === undefined) throw new AuthError('user-not-found');
    // etcd keeps the user's options: a no-password user stays one.
    this.putUser({ ...user, passwordHash: user.passwordHash === null ? null : passwordHash });
    this.bumpRevision();
    this.tokens.invalidateUser(name);
    return { kind: 'done' };
  }

  private userGrantRole(name: string, role: string): AuthOpResult {
    const user = this.users.get(name);
    if (user === undefined) throw new AuthError('user-not-found');
    // The root role may be granted before anyone created it (etcdctl auth enable relies on this).
    if (role !== ROOT_ROLE && !this.roles.has(role)) throw new AuthError('role-not-found');
    if (user.roles.includes(role)) return { kind: 'done' };
    this.putUser({ ...user, roles: [...user.roles, role].sort(byBytes) });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private userRevokeRole(name: string, role: string): AuthOpResult {
    if (this.enabledFlag && name === ROOT_USER && role === ROOT_ROLE)
      throw new AuthError('invalid-auth-mgmt');
    const user = this.users.get(name);
    if (user === undefined) throw new AuthError('user-not-found');
    if (!user.roles.includes(role)) throw new AuthError('role-not-granted');
    this.putUser({ ...user, roles: user.roles.filter((r) => r !== role) });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private roleAdd(name: string): AuthOpResult {
    if (name === '') throw new AuthError('role-empty');
    if (this.roles.has(name)) throw new AuthError('role-already-exist');
    this.putRole({ name, permissions: [] });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private roleDelete(name: string): AuthOpResult {
    if (this.enabledFlag && name === ROOT_ROLE) throw new AuthError('invalid-auth-mgmt');
    if (!this.roles.has(name)) throw new AuthError('role-not-found');
    this.roles.delete(name);
    this.backend.deleteAuthRow('role', Buffer.from(name));
    // Users lose the role too, so that a later role of the same name is not granted by surprise.
    for (const user of [...this.users.values()]) {
      if (user.roles.includes(name))
        this.putUser({ ...user, roles: user.roles.filter((r) => r !== name) });
    }
    this.bumpRevision();
    return { kind: 'done' };
  }

  private roleGrantPermission(name: string, permission: Permission): AuthOpResult {
    const role = this.roles.get(name);
    if (role === undefined) throw new AuthError('role-not-found');
    // As etcd: the same key and range end update the type; otherwise the grant is added.
    const at = role.permissions.findIndex((p) => Buffer.compare(p.key, permission.key) >= 0);
    const existing = at >= 0 ? role.permissions[at] : undefined;
    let permissions: Permission[];
    if (
      existing !== undefined &&
      existing.key.equals(permission.key) &&
      existing.rangeEnd.equals(permission.rangeEnd)
    ) {
      permissions = role.permissions.map((p, i) =>
        i === at ? { ...p, type: permission.type } : p,
      );
    } else {
      permissions = [...role.permissions, permission].sort((a, b) => Buffer.compare(a.key, b.key));
    }
    this.putRole({ name, permissions });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private roleRevokePermission(name: string, key: Buffer, rangeEnd: Buffer): AuthOpResult {
    const role = this.roles.get(name);
    if (role === undefined) throw new AuthError('role-not-found');
    const permissions = role.permissions.filter(
      (p) => !(p.key.equals(key) && p.rangeEnd.equals(rangeEnd)),
    );
    if (permissions.length === role.permissions.length)
      throw new AuthError('permission-not-granted');
    this.putRole({ name, permissions });
    this.bumpRevision();
    return { kind: 'done' };
  }

  private putUser(user: User): void {
    this.users.set(user.name, user);
    this.merged.clear();
    const value = JSON.stringify({ passwordHash: user.passwordHash, roles: user.roles });
    this.backend.putAuthRow({ kind: 'user', name: Buffer.from(user.name), value });
  }

  private putRole(role: Role): void {
    this.roles.set(role.name, role);
    this.merged.clear();
    const permissions: StoredPermission[] = role.permissions.map((p) => ({
      type: p.type,
      key: p.key.toString('base64'),
      rangeEnd: p.rangeEnd.toString('base64'),
    }));
    this.backend.putAuthRow({
      kind: 'role',
      name: Buffer.from(role.name),
      value: JSON.stringify({ permissions }),
    });
  }

  private bumpRevision(): void {
    this.merged.clear();
    this.revisionNumber += 1;
    this.backend.setMeta('auth_revision', this.revisionNumber);
  }
}
