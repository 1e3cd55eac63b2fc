import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { ApiError } from './errors.js';

/** How the store judged a user name and password. */
export type UserCheck = 'valid' | 'invalid' | 'auth-disabled';
export type UserVerifier = (user: string, password: string) => Promise<UserCheck>;

/** Throws ApiError('unauthorized') unless the request carries credentials the master accepts. */
export type RequestAuthenticator = (request: IncomingMessage) => Promise<void>;

export interface ApiAuthOptions {
  /** Checks Basic credentials; absent when the store has no auth (then Basic is not accepted). */
  readonly verifyUser?: UserVerifier;
  /** A shared secret accepted as `Authorization: Bearer <token>` (--api-token). */
  readonly token?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly cacheTtlMs?: number;
}

/** A user's successful check is reused this long: each check is a store round trip (a raft write on etcd 3.4) and a bcrypt. */
export const AUTH_CACHE_TTL_MS_DEFAULT = 60_000;
/** Only successes are cached, so this bounds memory by the number of real users, not by guesses. */
const AUTH_CACHE_ENTRIES_MAX = 1_024;
const MISSING_MESSAGE =
  'authentication required: pass --user and --password (or ETCRON_USER and ETCRON_PASSWORD) with a store user, ' +
  'or a bearer token (--api-token, ETCRON_API_TOKEN)';

/**
 * The API's gate, or undefined when it needs none (the store has no auth and no token is set).
 * Basic credentials are a store user's, checked by the store itself (Auth.Authenticate), so the
 * API admits exactly the users the store does.
 */
export function apiAuthenticator(options: ApiAuthOptions): RequestAuthenticator | undefined {
  if (options.verifyUser === undefined && options.token === undefined) return undefined;
  const cache = new SuccessCache(options.clock, options.cacheTtlMs ?? AUTH_CACHE_TTL_MS_DEFAULT);
  const tokenDigest = options.token === undefined ? undefined : digest('token', options.token);
  return async (request) => {
    const header = request.headers.authorization ?? '';
    const space = header.indexOf(' ');
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    const value = space < 0 ? '' : header.slice(space + 1).trim();
    if (scheme === 'bearer' && tokenDigest !== undefined) {
      if (timingSafeEqual(digest('token', value), tokenDigest)) return;
      throw new ApiError('unauthorized', 'bearer token refused');
    }
    if (scheme === 'basic' && options.verifyUser !== undefined) {
      const { user, password } = decodeBasic(value);
      const key = digest('user', `${user}\0${password}`).toString('hex');
      if (cache.has(key)) return;
      const check = await options.verifyUser(user, password);
      if (check === 'invalid') throw new ApiError('unauthorized', `authentication failed for user ${user}: wrong user or password`);
      // The store's auth was switched off after this master started: it admits everyone, so does the API.
      if (check === 'auth-disabled') options.logger.warn('store auth is disabled: accepting Basic credentials unchecked');
      cache.add(key);
      return;
    }
    throw new ApiError('unauthorized', MISSING_MESSAGE);
  };
}

/** Verifies a store user with the etcd Auth.Authenticate RPC. Other store errors propagate (503). */
export function storeUserVerifier(client: Etcd3): UserVerifier {
  return async (user, password) => {
    if (user.length === 0) return 'invalid';
    try {
      await client.auth.authenticate({ name: user, password });
      return 'valid';
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message.includes('authentication failed')) return 'invalid';
      if (message.includes('authentication is not enabled')) return 'auth-disabled';
      throw err;
    }
  };
}

function decodeBasic(value: string): { user: string; password: string } {
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) throw new ApiError('unauthorized', 'malformed Basic credentials: expected base64 of user:password');
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Keyed by a process-secret HMAC so that neither passwords nor plain hashes of them sit in memory. */
const HMAC_KEY = randomBytes(32);

function digest(kind: string, text: string): Buffer {
  return createHmac('sha256', HMAC_KEY).update(`${kind}\0${text}`).digest();
}

class SuccessCache {
  private readonly expiries = new Map<string, number>();

  constructor(private readonly clock: Clock, private readonly ttlMs: number) {}

  has(key: string): boolean {
    const expiresAt = this.expiries.get(key);
    if (expiresAt === undefined) return false;
    if (this.clock.monotonicMs() < expiresAt) return true;
    this.expiries.delete(key);
    return false;
  }

  add(key: string): void {
    this.expiries.delete(key);
    if (this.expiries.size >= AUTH_CACHE_ENTRIES_MAX) {
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) this.expiries.delete(oldest);
    }
    this.expiries.set(key, this.clock.monotonicMs() + this.ttlMs);
  }
}
