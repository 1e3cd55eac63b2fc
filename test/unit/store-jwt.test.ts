import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JwtOptionsError, JwtTokens, parseJwtOptions } from '../../store/auth/jwt-tokens.js';

const dir = mkdtempSync(join(tmpdir(), 'etcron-jwt-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keyFiles(kind: 'rsa' | 'ec', name: string): { priv: string; pub: string } {
  const pair = kind === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  writeFileSync(priv, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pub, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
}

describe('JWT auth tokens', () => {
  const rsa = keyFiles('rsa', 'rsa');
  const ec = keyFiles('ec', 'ec');
  const secret = join(dir, 'hmac');
  writeFileSync(secret, randomBytes(32));

  it.each([
    ['RS256', rsa], ['RS512', rsa], ['PS256', rsa], ['PS384', rsa], ['ES256', ec],
  ])('%s: a token verifies, carries its claims, and nothing else verifies', (method, files) => {
    let now = 1_000_000;
    const tokens = new JwtTokens({ method, privateKeyPath: files.priv, publicKeyPath: files.pub, ttlMs: 10_000 }, () => now);
    const token = tokens.issue({ username: 'alice', revision: 7 });
    expect(tokens.verify(token)).toEqual({ username: 'alice', revision: 7 });
    // A verify-only member (public key alone) accepts it too, and cannot issue.
    const verifier = new JwtTokens({ method, publicKeyPath: files.pub, ttlMs: 10_000 }, () => now);
    expect(verifier.verify(token)).toEqual({ username: 'alice', revision: 7 });
    expect(verifier.canSign).toBe(false);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const altered = Buffer.from(JSON.stringify({ exp: 99_999_999, revision: 7, username: 'root' })).toString('base64url');
    expect(tokens.verify(`${header}.${altered}.${signature}`)).toBeNull();
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    expect(tokens.verify(`${none}.${payload}.`)).toBeNull();
    expect(tokens.verify('not-a-token')).toBeNull();
    now += 10_000;
    expect(tokens.verify(token)).toBeNull();
  });

  it('HS256 signs with the priv-key file\'s bytes as the secret', () => {
    const tokens = new JwtTokens({ method: 'HS256', privateKeyPath: secret, ttlMs: 60_000 });
    expect(tokens.verify(tokens.issue({ username: 'bob', revision: 1 }))).toEqual({ username: 'bob', revision: 1 });
  });

  it('refuses keys that do not fit, and bad options, at start', () => {
    const other = keyFiles('rsa', 'other');
    expect(() => new JwtTokens({ method: 'RS256', privateKeyPath: rsa.priv, publicKeyPath: other.pub, ttlMs: 1 })).toThrow(JwtOptionsError);
    expect(() => new JwtTokens({ method: 'ES256', privateKeyPath: rsa.priv, ttlMs: 1 })).toThrow(/EC key/);
    expect(() => new JwtTokens({ method: 'RS256', ttlMs: 1 })).toThrow(/missing key/);
    expect(parseJwtOptions('jwt,sign-method=RS256,priv-key=a,pub-key=b,ttl=1m30s')).toEqual({ method: 'RS256', privateKeyPath: 'a', publicKeyPath: 'b', ttlMs: 90_000 });
    expect(parseJwtOptions('jwt,sign-method=ES384').ttlMs).toBe(300_000);
    expect(() => parseJwtOptions('jwt,sign-method=XX1')).toThrow(/sign-method/);
    expect(() => parseJwtOptions('jwt,sign-method=RS256,ttl=soon')).toThrow(/ttl/);
  });
});
