import type { Permission } from './permissions.js';

/**
 * Who sent a request, as the receiving member resolved it from the client's token (or
 * certificate), and the auth revision at that moment. Travels in the log with the request so that
 * every member checks permissions the same way when it applies the entry. An API request without
 * credentials carries { username: '', revision: 0 }; a request the server makes itself (lease
 * expiry, member attributes) carries none and is not checked.
 */
export interface RequestAuth {
  readonly username: string;
  readonly revision: number;
}

export const ANONYMOUS: RequestAuth = { username: '', revision: 0 };

/** Auth management requests, replicated through the log like writes (etcd proposes them all). */
export type AuthOp =
  | { readonly kind: 'enable' }
  | { readonly kind: 'disable' }
  /** The password was checked before proposing; the token prefix was drawn there too. */
  | { readonly kind: 'authenticate'; readonly name: string; readonly tokenPrefix: string }
  /** `passwordHash` null: a user that cannot authenticate with a password (options.no_password). */
  | { readonly kind: 'user-add'; readonly name: string; readonly passwordHash: string | null }
  | { readonly kind: 'user-get'; readonly name: string }
  | { readonly kind: 'user-list' }
  | { readonly kind: 'user-delete'; readonly name: string }
  | { readonly kind: 'user-change-password'; readonly name: string; readonly passwordHash: string }
  | { readonly kind: 'user-grant-role'; readonly user: string; readonly role: string }
  | { readonly kind: 'user-revoke-role'; readonly name: string; readonly role: string }
  | { readonly kind: 'role-add'; readonly name: string }
  | { readonly kind: 'role-get'; readonly role: string }
  | { readonly kind: 'role-list' }
  | { readonly kind: 'role-delete'; readonly role: string }
  | {
      readonly kind: 'role-grant-permission';
      readonly name: string;
      readonly permission: Permission;
    }
  | {
      readonly kind: 'role-revoke-permission';
      readonly role: string;
      readonly key: Buffer;
      readonly rangeEnd: Buffer;
    };

export type AuthOpResult =
  | { readonly kind: 'done' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'names'; readonly names: readonly string[] }
  | { readonly kind: 'permissions'; readonly permissions: readonly Permission[] };
