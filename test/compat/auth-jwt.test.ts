// --auth-token jwt, against real etcd 3.4 side by side with the same key pair: tokens are signed
// JWTs ({username, revision, exp}), so a token either store issues is good on the other; an
// expired one is refused "invalid auth token", and one issued before an auth change "revision of
// auth store is old", with the same gRPC codes on both.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompatClient, type Msg, type Outcome } from '../support/compat-client.js';
import { etcdctl } from '../support/compat-etcdctl.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const TTL_SECONDS = 3;

describe('auth with JWT tokens (--auth-token jwt)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-jwt-'));
  let etcd: StoreProcess;
  let subject: StoreProcess;
  let etcdClient: CompatClient;
  let subjectClient: CompatClient;

  beforeAll(async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const priv = join(dir, 'jwt.key');
    const pub = join(dir, 'jwt.pub');
    writeFileSync(priv, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const extraArgs = ['--auth-token', `jwt,pub-key=${pub},priv-key=${priv},sign-method=RS256,ttl=${TTL_SECONDS}s`];
    [etcd, subject] = await Promise.all([startReference({ extraArgs }), startSubject({ extraArgs })]);
    for (const store of [etcd, subject]) {
      for (const args of [['user', 'add', 'root', '--new-user-password=rootpw'], ['auth', 'enable']]) {
        const result = await etcdctl(store, args);
        expect(result.code, `${store.kind} ${args.join(' ')}: ${result.stderr}`).toBe(0);
      }
    }
    etcdClient = new CompatClient(etcd.endpoint);
    subjectClient = new CompatClient(subject.endpoint);
  }, 60_000);

  afterAll(async () => {
    etcdClient?.close();
    subjectClient?.close();
    await disposeStores(etcd, subject);
    rmSync(dir, { recursive: true, force: true });
  });

  const authenticate = async (client: CompatClient): Promise<string> => {
    const outcome = await client.call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' });
    if (!outcome.ok) throw new Error(`${outcome.code} ${outcome.message}`);
    return String(outcome.value['token']);
  };
  const putWith = (client: CompatClient, token: string, key: string): Promise<Outcome> =>
    client.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('v') }, 10_000, { token });
  const shape = (outcome: Outcome): Msg | string => (outcome.ok ? 'ok' : `${outcome.code}: ${outcome.message}`);
  const claimsOf = (token: string): Record<string, unknown> => {
    const [header = '', payload = ''] = token.split('.');
    return { header: JSON.parse(Buffer.from(header, 'base64url').toString()) as unknown, ...JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown> };
  };

  it('etcdctl works with a user, as on etcd', async () => {
    for (const store of [etcd, subject]) {
      const put = await etcdctl(store, ['--user', 'root:rootpw', 'put', 'k', 'v']);
      expect(put.stdout.trim(), store.kind).toBe('OK');
      const get = await etcdctl(store, ['--user', 'root:rootpw', 'get', 'k', '--print-value-only']);
      expect(get.stdout.trim(), store.kind).toBe('v');
      const anonymous = await etcdctl(store, ['put', 'k', 'v']);
      expect(anonymous.stderr, store.kind).toContain('user name is empty');
    }
  });

  it('issues RS256 JWTs with the same claims, each good on the other store', async () => {
    const fromEtcd = await authenticate(etcdClient);
    const fromSubject = await authenticate(subjectClient);
    const etcdClaims = claimsOf(fromEtcd);
    const subjectClaims = claimsOf(fromSubject);
    expect(subjectClaims['header']).toMatchObject({ alg: 'RS256' });
    expect(Object.keys(subjectClaims).sort()).toEqual(Object.keys(etcdClaims).sort());
    expect(subjectClaims['username']).toBe('root');
    expect(subjectClaims['revision']).toBe(etcdClaims['revision']);
    const expiresInS = (subjectClaims['exp'] as number) - Date.now() / 1000;
    expect(expiresInS).toBeGreaterThan(TTL_SECONDS - 2);
    expect(expiresInS).toBeLessThanOrEqual(TTL_SECONDS + 1);
    // The same key pair signs on both sides: each store takes the other's token.
    expect(shape(await putWith(subjectClient, fromEtcd, 'cross'))).toBe('ok');
    expect(shape(await putWith(etcdClient, fromSubject, 'cross'))).toBe('ok');
    // A token whose payload was altered (or not signed by this key) is refused on both.
    const [h, , s] = fromSubject.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claimsOf(fromSubject), header: undefined, username: 'someone' })).toString('base64url')}.${s}`;
    const refusals = await Promise.all([putWith(etcdClient, forged, 'x'), putWith(subjectClient, forged, 'x')]);
    expect(shape(refusals[1])).toBe(shape(refusals[0]));
    expect(shape(refusals[1])).toBe('UNAUTHENTICATED: etcdserver: invalid auth token');
  });

  it('refuses a token issued before an auth change as old, and an expired one as invalid, as etcd does', async () => {
    const tokens = await Promise.all([authenticate(etcdClient), authenticate(subjectClient)]);
    for (const store of [etcd, subject]) {
      const result = await etcdctl(store, ['--user', 'root:rootpw', 'user', 'add', 'alice', '--new-user-password=a']);
      expect(result.code, result.stderr).toBe(0);
    }
    const old = await Promise.all([putWith(etcdClient, tokens[0], 'old'), putWith(subjectClient, tokens[1], 'old')]);
    expect(shape(old[1])).toBe(shape(old[0]));
    expect(shape(old[1])).toBe('INVALID_ARGUMENT: etcdserver: revision of auth store is old');

    const fresh = await Promise.all([authenticate(etcdClient), authenticate(subjectClient)]);
    const expiresAtMs = (claimsOf(fresh[1])['exp'] as number) * 1000;
    await waitFor('the fresh tokens to expire', () => (Date.now() > expiresAtMs + 1_000 ? true : undefined), (TTL_SECONDS + 3) * 1000, 200);
    const expired = await Promise.all([putWith(etcdClient, fresh[0], 'late'), putWith(subjectClient, fresh[1], 'late')]);
    expect(shape(expired[1])).toBe(shape(expired[0]));
    expect(shape(expired[1])).toBe('UNAUTHENTICATED: etcdserver: invalid auth token');
  });
});
