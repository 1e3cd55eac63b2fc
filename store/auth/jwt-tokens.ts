import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, constants, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * etcd's "jwt" tokens (--auth-token jwt,sign-method=RS256,priv-key=…,pub-key=…,ttl=5m): a signed
 * JWT whose claims are {username, revision, exp}. Any member with the key verifies any member's
 * token, nothing is kept in memory, and `revision` is the auth store's revision when the token was
 * issued: after any auth change the token is refused as old ("revision of auth store is old") and
 * clients authenticate again, as with etcd. Signing happens outside the apply (it needs the wall
 * clock for `exp`), on the member that answers Authenticate.
 */
export class JwtOptionsError extends Error {
  override readonly name = 'JwtOptionsError';
}

type Family = 'RS' | 'PS' | 'ES' | 'HS';
const HASHES = { '256': 'sha256', '384': 'sha384', '512': 'sha512' } as const;
/** ECDSA signatures are r || s, each as long as the curve's order. */
const EC_PART_BYTES = { '256': 32, '384': 48, '512': 66 } as const;

export interface JwtClaims {
  readonly username: string;
  readonly revision: number;
}

export interface JwtOptions {
  readonly method: string;
  readonly privateKeyPath?: string;
  readonly publicKeyPath?: string;
  readonly ttlMs: number;
}

const DEFAULT_TTL_MS = 5 * 60_000;

/** "jwt,sign-method=RS256,pub-key=a,priv-key=b,ttl=10m" → options (files are read later). */
export function parseJwtOptions(value: string): JwtOptions {
  const [kind, ...pairs] = value.split(',');
  if (kind !== 'jwt') throw new JwtOptionsError(`not a jwt token option: ${value}`);
  const map = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new JwtOptionsError(`invalid auth token option ${JSON.stringify(pair)} (want key=value)`);
    map.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const method = map.get('sign-method') ?? '';
  if (!/^(RS|PS|ES|HS)(256|384|512)$/.test(method)) throw new JwtOptionsError(`invalid auth token sign-method ${JSON.stringify(method)}`);
  const ttl = map.get('ttl');
  const privateKeyPath = map.get('priv-key');
  const publicKeyPath = map.get('pub-key');
  return {
    method, ttlMs: ttl === undefined || ttl === '' ? DEFAULT_TTL_MS : goDurationMs(ttl),
    ...(privateKeyPath === undefined || privateKeyPath === '' ? {} : { privateKeyPath }),
    ...(publicKeyPath === undefined || publicKeyPath === '' ? {} : { publicKeyPath }),
  };
}

/** Go's time.ParseDuration for the units a ttl uses (e.g. "1s", "10m", "1h30m", "500ms"). */
function goDurationMs(text: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new JwtOptionsError(`invalid auth token ttl ${JSON.stringify(text)}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (units[p[2] as string] ?? 0), 0);
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export class JwtTokens {
  private readonly family: Family;
  private readonly hash: 'sha256' | 'sha384' | 'sha512';
  private readonly bits: '256' | '384' | '512';
  private readonly signingKey: KeyObject | Buffer | null;
  private readonly verifyingKey: KeyObject | Buffer;

  constructor(private readonly options: JwtOptions, private readonly nowMs: () => number = () => Date.now()) {
    this.family = options.method.slice(0, 2) as Family;
    this.bits = options.method.slice(2) as '256' | '384' | '512';
    this.hash = HASHES[this.bits];
    const privatePem = options.privateKeyPath === undefined ? undefined : readFileSync(options.privateKeyPath);
    const publicPem = options.publicKeyPath === undefined ? undefined : readFileSync(options.publicKeyPath);
    if (this.family === 'HS') {
      // HMAC: the "private key" file's bytes are the secret, as etcd reads them.
      if (privatePem === undefined || privatePem.length === 0) throw new JwtOptionsError('auth token: missing key (priv-key) for HMAC signing');
      this.signingKey = privatePem;
      this.verifyingKey = privatePem;
      return;
    }
    const privateKey = privatePem === undefined ? null : createPrivateKey(privatePem);
    // A certificate serves as the public key too (etcd's e2e tests pass server.crt).
    const publicKey = publicPem === undefined ? null : createPublicKey(publicPem);
    if (privateKey === null && publicKey === null) throw new JwtOptionsError('auth token: missing key (priv-key or pub-key)');
    const expected = this.family === 'ES' ? 'ec' : 'rsa';
    const derived = privateKey === null ? null : createPublicKey(privateKey);
    for (const key of [privateKey, publicKey]) {
      if (key !== null && key.asymmetricKeyType !== expected) throw new JwtOptionsError(`auth token: ${options.method} needs an ${expected.toUpperCase()} key`);
    }
    if (derived !== null && publicKey !== null && !derived.export({ format: 'der', type: 'spki' }).equals(publicKey.export({ format: 'der', type: 'spki' }))) {
      throw new JwtOptionsError('auth token: public and private keys do not match');
    }
    this.signingKey = privateKey;
    // Verify with the private key's public half when there is one, as etcd does.
    this.verifyingKey = derived ?? (publicKey as KeyObject);
  }

  /** Whether this member can issue tokens (a public key alone only verifies them). */
  get canSign(): boolean {
    return this.signingKey !== null;
  }

  issue(claims: JwtClaims): string {
    if (this.signingKey === null) throw new JwtOptionsError('auth token: verify-only (no priv-key): cannot issue tokens');
    const header = base64url(JSON.stringify({ alg: this.options.method, typ: 'JWT' }));
    const payload = base64url(JSON.stringify({
      exp: Math.floor((this.nowMs() + this.options.ttlMs) / 1000), revision: claims.revision, username: claims.username,
    }));
    const input = `${header}.${payload}`;
    return `${input}.${base64url(this.signature(input))}`;
  }

  /** The claims of a token this member can verify and that has not expired; null otherwise. */
  verify(token: string): JwtClaims | null {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJson(headerPart);
    // The header names the algorithm: only ours is accepted (no "none", no switching families).
    if (header === null || header['alg'] !== this.options.method) return null;
    if (!this.isValidSignature(`${headerPart}.${payloadPart}`, Buffer.from(signaturePart, 'base64url'))) return null;
    const payload = decodeJson(payloadPart);
    if (payload === null) return null;
    const { username, revision, exp } = payload;
    if (typeof username !== 'string' || typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) return null;
    if (exp !== undefined && (typeof exp !== 'number' || this.nowMs() / 1000 >= exp)) return null;
    return { username, revision };
  }

  private signature(input: string): Buffer {
    const data = Buffer.from(input);
    switch (this.family) {
      case 'HS': return createHmac(this.hash, this.signingKey as Buffer).update(data).digest();
      case 'RS': return sign(this.hash, data, this.signingKey as KeyObject);
      case 'PS': return sign(this.hash, data, { key: this.signingKey as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
      case 'ES': return sign(this.hash, data, { key: this.signingKey as KeyObject, dsaEncoding: 'ieee-p1363' });
    }
  }

  private isValidSignature(input: string, signature: Buffer): boolean {
    const data = Buffer.from(input);
    try {
      switch (this.family) {
        case 'HS': {
          const expected = createHmac(this.hash, this.verifyingKey as Buffer).update(data).digest();
          return expected.length === signature.length && timingSafeEqual(expected, signature);
        }
        case 'RS': return verify(this.hash, data, this.verifyingKey as KeyObject, signature);
        // Signers may pick any salt length; verify with whatever the signature says.
        case 'PS': return verify(this.hash, data, { key: this.verifyingKey as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature);
        case 'ES': return signature.length === 2 * EC_PART_BYTES[this.bits]
          && verify(this.hash, data, { key: this.verifyingKey as KeyObject, dsaEncoding: 'ieee-p1363' }, signature);
      }
    } catch {
      return false;
    }
  }
}

function decodeJson(part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
