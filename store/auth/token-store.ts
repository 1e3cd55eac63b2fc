import { randomInt } from 'node:crypto';

/**
 * etcd's "simple" tokens: "<16 random letters>.<raft index of the Authenticate entry>". The
 * letters are drawn by the member that receives Authenticate, before proposing; every member
 * learns the token when it applies the entry. Tokens live in memory only, expire after 5 minutes
 * without use (each use renews them), and are dropped when the user is deleted or changes its
 * password, and all at once when auth is disabled.
 */
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const PREFIX_LENGTH = 16;
export const SIMPLE_TOKEN_TTL_MS = 5 * 60 * 1000;
/** Bounds memory when clients authenticate far more often than tokens expire. */
const TOKENS_MAX = 100_000;

export function newTokenPrefix(): string {
  let prefix = '';
  for (let i = 0; i < PREFIX_LENGTH; i++) prefix += LETTERS[randomInt(LETTERS.length)];
  return prefix;
}

export function simpleToken(prefix: string, index: number): string {
  return `${prefix}.${index}`;
}

/** The log index a simple token was issued at, or null if it does not look like one. */
export function tokenIndex(token: string): number | null {
  const index = Number(token.slice(token.lastIndexOf('.') + 1));
  return token.includes('.') && Number.isSafeInteger(index) && index > 0 ? index : null;
}

interface TokenEntry {
  readonly username: string;
  expiresAtMs: number;
}

export class SimpleTokenStore {
  private readonly tokens = new Map<string, TokenEntry>();

  constructor(
    private readonly nowMs: () => number = () => performance.now(),
    private readonly ttlMs = SIMPLE_TOKEN_TTL_MS,
  ) {}

  assign(token: string, username: string): void {
    if (this.tokens.size >= TOKENS_MAX) this.sweep();
    // Still full of live tokens: the oldest assignment gives way (Map keeps insertion order).
    if (this.tokens.size >= TOKENS_MAX) {
      const oldest = this.tokens.keys().next();
      if (oldest.done !== true) this.tokens.delete(oldest.value);
    }
    this.tokens.set(token, { username, expiresAtMs: this.nowMs() + this.ttlMs });
  }

  /** The user a live token belongs to, renewing it; null for an unknown or expired token. */
  lookup(token: string): string | null {
    const entry = this.tokens.get(token);
    if (entry === undefined) return null;
    const now = this.nowMs();
    if (entry.expiresAtMs <= now) {
      this.tokens.delete(token);
      return null;
    }
    entry.expiresAtMs = now + this.ttlMs;
    return entry.username;
  }

  invalidateUser(username: string): void {
    for (const [token, entry] of this.tokens)
      if (entry.username === username) this.tokens.delete(token);
  }

  clear(): void {
    this.tokens.clear();
  }

  get size(): number {
    return this.tokens.size;
  }

  private sweep(): void {
    const now = this.nowMs();
    for (const [token, entry] of this.tokens)
      if (entry.expiresAtMs <= now) this.tokens.delete(token);
  }
}
