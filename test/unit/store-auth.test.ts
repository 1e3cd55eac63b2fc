// The auth store inside the applier: permission decisions on key ranges, the auth revision that
// makes a request checked against stale permissions fail at apply, exact state after a reopen
// (replay and snapshots rely on it), simple tokens and their expiry, password hashes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError } from '../../store/auth/errors.js';
import { hashPassword, verifyPassword } from '../../store/auth/password.js';
import { MergedPermissions, type PermissionType } from '../../store/auth/permissions.js';
import type { AuthOp, RequestAuth } from '../../store/auth/requests.js';
import { SimpleTokenStore } from '../../store/auth/token-store.js';
import { Lessor } from '../../store/lease/lessor.js';
import { Backend } from '../../store/mvcc/backend.js';
import { MvccStore } from '../../store/mvcc/kv-store.js';
import { Applier, type ApplyOutcome } from '../../store/server/apply.js';
import type { InternalRequest } from '../../store/server/requests.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const none = Buffer.alloc(0);

class Member {
  readonly dir = mkdtempSync(join(tmpdir(), 'etcron-auth-'));
  readonly tokens = new SimpleTokenStore();
  backend!: Backend;
  kv!: MvccStore;
  applier!: Applier;
  private index = 0;

  constructor() {
    this.open();
  }

  open(): void {
    this.backend = new Backend(join(this.dir, 'db'));
    this.kv = new MvccStore(this.backend);
    const lessor = new Lessor(this.backend, 2);
    this.kv.setLeaseAttachments(lessor);
    this.applier = new Applier(this.kv, lessor, this.backend, this.tokens);
  }

  reopen(): void {
    this.backend.close();
    this.open();
  }

  apply(request: InternalRequest): ApplyOutcome {
    return this.backend.transaction(() => this.applier.apply(request, ++this.index));
  }

  admin(op: AuthOp): void {
    const outcome = this.apply({ type: 'auth', op, auth: this.as('root') });
    if (!outcome.ok) throw outcome.error;
  }

  /** Credentials as the API layer resolves them: the auth revision at receipt. */
  as(username: string): RequestAuth {
    return { username, revision: this.applier.auth.revision };
  }

  close(): void {
    this.backend.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function refusal(outcome: ApplyOutcome): string {
  if (outcome.ok) return 'accepted';
  return outcome.error instanceof AuthError ? outcome.error.kind : outcome.error.message;
}

const putAs = (key: string, auth: RequestAuth): InternalRequest => ({
  type: 'put',
  request: {
    key: b(key),
    value: b('v'),
    lease: 0n,
    prevKv: false,
    ignoreValue: false,
    ignoreLease: false,
  },
  auth,
});

/** root with the root role, auth on, and a user "cron" with readwrite on the /cron/ prefix. */
function enabledMember(): Member {
  const member = new Member();
  member.admin({ kind: 'user-add', name: 'root', passwordHash: 'unused' });
  member.admin({ kind: 'user-grant-role', user: 'root', role: 'root' });
  member.admin({ kind: 'user-add', name: 'cron', passwordHash: 'unused' });
  member.admin({ kind: 'role-add', name: 'cron' });
  member.admin({
    kind: 'role-grant-permission',
    name: 'cron',
    permission: { type: 'readwrite', key: b('/cron/'), rangeEnd: b('/cron0') },
  });
  member.admin({ kind: 'user-grant-role', user: 'cron', role: 'cron' });
  member.admin({ kind: 'enable' });
  return member;
}

let members: Member[] = [];
afterEach(() => {
  for (const member of members) member.close();
  members = [];
});

describe('key-range permissions', () => {
  const grants = (...list: [PermissionType, string, string][]): MergedPermissions =>
    new MergedPermissions(
      list.map(([type, key, rangeEnd]) => ({ type, key: b(key), rangeEnd: b(rangeEnd) })),
    );

  it('a prefix grant covers its keys and sub-ranges, nothing outside', () => {
    const perms = grants(['readwrite', '/cron/', '/cron0']);
    expect(perms.allows('read', b('/cron/jobs/a'), none)).toBe(true);
    expect(perms.allows('write', b('/cron/jobs/'), b('/cron/jobs0'))).toBe(true);
    expect(perms.allows('read', b('/cron/'), b('/cron1'))).toBe(false);
    expect(perms.allows('read', b('/other'), none)).toBe(false);
    expect(perms.allows('read', b('/cron/'), Buffer.from([0]))).toBe(false);
  });

  it('grants that touch join into one range; a gap or the wrong kind does not', () => {
    const perms = grants(['read', 'a', 'c'], ['read', 'c', 'e'], ['write', 'e', 'g']);
    expect(perms.allows('read', b('a'), b('e'))).toBe(true);
    expect(perms.allows('read', b('b'), b('f'))).toBe(false);
    expect(perms.allows('write', b('a'), b('b'))).toBe(false);
  });

  it('a single-key grant allows that key only; a from-key grant allows everything after', () => {
    const perms = grants(['read', 'k1', ''], ['read', 'zz', '\u0000']);
    expect(perms.allows('read', b('k1'), none)).toBe(true);
    expect(perms.allows('read', b('k10'), none)).toBe(false);
    expect(perms.allows('read', b('zzz'), Buffer.from([0]))).toBe(true);
    expect(perms.allows('read', b('zy'), Buffer.from([0]))).toBe(false);
  });
});

describe('the auth store in the applier', () => {
  it('checks writes at apply against the auth revision the request was received with', () => {
    const member = enabledMember();
    members.push(member);
    const received = member.as('cron');
    expect(refusal(member.apply(putAs('/cron/a', received)))).toBe('accepted');
    expect(refusal(member.apply(putAs('/elsewhere', member.as('cron'))))).toBe('permission-denied');
    expect(refusal(member.apply(putAs('/cron/a', { username: '', revision: 0 })))).toBe(
      'user-empty',
    );
    // A permission revoked after the request was received and before it was applied wins.
    member.admin({
      kind: 'role-revoke-permission',
      role: 'cron',
      key: b('/cron/'),
      rangeEnd: b('/cron0'),
    });
    const revision = member.kv.currentRev;
    expect(refusal(member.apply(putAs('/cron/b', received)))).toBe('auth-old-revision');
    expect(refusal(member.apply(putAs('/cron/b', member.as('cron'))))).toBe('permission-denied');
    expect(member.kv.currentRev).toBe(revision);
  });

  it('applies the root rules and needs root for management', () => {
    const member = enabledMember();
    members.push(member);
    const asCron = (op: AuthOp): string =>
      refusal(member.apply({ type: 'auth', op, auth: member.as('cron') }));
    expect(asCron({ kind: 'user-list' })).toBe('permission-denied');
    expect(asCron({ kind: 'user-get', name: 'cron' })).toBe('accepted');
    expect(asCron({ kind: 'role-get', role: 'cron' })).toBe('accepted');
    expect(asCron({ kind: 'role-get', role: 'root' })).toBe('permission-denied');
    const asRoot = (op: AuthOp): string =>
      refusal(member.apply({ type: 'auth', op, auth: member.as('root') }));
    expect(asRoot({ kind: 'user-delete', name: 'root' })).toBe('invalid-auth-mgmt');
    expect(asRoot({ kind: 'role-delete', role: 'root' })).toBe('invalid-auth-mgmt');
    expect(asRoot({ kind: 'user-revoke-role', name: 'root', role: 'root' })).toBe(
      'invalid-auth-mgmt',
    );
  });

  it('keeps users, roles, the enabled flag and the revision across a reopen', () => {
    const member = enabledMember();
    members.push(member);
    const revision = member.applier.auth.revision;
    member.reopen();
    expect(member.applier.auth.enabled).toBe(true);
    expect(member.applier.auth.revision).toBe(revision);
    expect(refusal(member.apply(putAs('/cron/a', member.as('cron'))))).toBe('accepted');
    expect(refusal(member.apply(putAs('/b', member.as('cron'))))).toBe('permission-denied');
  });

  it('gives a token "<16 letters>.<log index>" that every member applying the entry knows', () => {
    const member = enabledMember();
    members.push(member);
    const outcome = member.apply({
      type: 'auth',
      op: { kind: 'authenticate', name: 'cron', tokenPrefix: 'abcdefghijklmnop' },
    });
    expect(
      outcome.ok && outcome.value.type === 'auth' && outcome.value.result.kind === 'token'
        ? outcome.value.result.token
        : null,
    ).toMatch(/^abcdefghijklmnop\.\d+$/);
    expect(member.tokens.size).toBe(1);
    member.admin({ kind: 'user-change-password', name: 'cron', passwordHash: 'other' });
    expect(member.tokens.size).toBe(0);
  });
});

describe('simple tokens and passwords', () => {
  it('expire after the TTL unless used, and each use renews them', () => {
    let now = 0;
    const tokens = new SimpleTokenStore(() => now, 1000);
    tokens.assign('t.1', 'alice');
    now = 900;
    expect(tokens.lookup('t.1')).toBe('alice');
    now = 1800;
    expect(tokens.lookup('t.1')).toBe('alice');
    now = 2801;
    expect(tokens.lookup('t.1')).toBeNull();
  });

  it('verifies a hash only with its own password', async () => {
    const hash = await hashPassword('s3cret');
    expect(hash).not.toContain('s3cret');
    expect(await verifyPassword('s3cret', hash)).toBe(true);
    expect(await verifyPassword('s3cret!', hash)).toBe(false);
    expect(await verifyPassword('s3cret', 'garbage')).toBe(false);
  });
});
