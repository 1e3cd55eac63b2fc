// Issue #7: "secure: SSL with client certificates" holds for the bundled store as for etcd 3.4.
// Certificates come from the openssl CLI; etcron and a real etcd start with the same flags and
// files, and etcdctl's answers (success, or the refusal it prints) must be the same on both.
// Also: the etcd3 client and the scheduler processes over TLS, --auto-tls, etcd's start-up
// errors, and a 3-member cluster over https:// peer URLs with peer client certificates.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdClient } from '../../shared/etcd/client.js';
import { ETCRON_BIN, hasEtcd } from '../support/etcd-process.js';
import { freePort, waitFor } from '../support/ports.js';
import {
  errorLine, etcdctlTls, makeCertificates, spawnStore, waitServing, type CtlOutcome, type FlaggedStore,
  type TestCertificates,
} from './tls-fixtures.js';

const started: FlaggedStore[] = [];
const daemons: ChildProcess[] = [];
let dir = '';
let certs: TestCertificates;

async function memberArgs(name: string, extra: readonly string[]): Promise<{ args: string[]; endpoint: string }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name, '--data-dir', join(dir, `${name}.data`),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    ...extra,
  ];
  return { args, endpoint };
}

function start(kind: 'etcd' | 'etcron', args: readonly string[]): FlaggedStore {
  const store = spawnStore(kind, args);
  started.push(store);
  return store;
}

/** GET /health over https; resolves with the status, or the client-side error of a refused handshake. */
function health(endpoint: string, tls: { ca: string; cert?: string; key?: string }): Promise<string> {
  return new Promise((resolve) => {
    const req = request(`${endpoint}/health`, {
      agent: false, timeout: 5_000, ca: readFileSync(tls.ca),
      ...(tls.cert === undefined ? {} : { cert: readFileSync(tls.cert) }),
      ...(tls.key === undefined ? {} : { key: readFileSync(tls.key) }),
    }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      res.on('end', () => resolve(`${res.statusCode ?? 0} ${body}`));
    });
    req.on('error', (err) => resolve(`refused: ${err.message}`));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * A bare TLS handshake. TLS 1.2, because there the server checks the client's certificate before
 * its Finished message, so a refusal reaches the client as a failed handshake.
 */
function handshake(port: number, files: { ca: string; cert?: string; key?: string }): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({
      host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ALPNProtocols: ['h2'], ca: readFileSync(files.ca),
      ...(files.cert === undefined ? {} : { cert: readFileSync(files.cert) }),
      ...(files.key === undefined ? {} : { key: readFileSync(files.key) }),
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
    socket.once('secureConnect', () => { socket.destroy(); resolve('ok'); });
    socket.once('error', (err) => resolve(`refused: ${err.message}`));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'etcron-tls-'));
  certs = await makeCertificates(dir);
});

afterAll(async () => {
  for (const daemon of daemons) if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  await Promise.all(started.map((s) => s.kill()));
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasEtcd())('client TLS with --client-cert-auth: etcron beside etcd 3.4', () => {
  const sides: { store: FlaggedStore; endpoint: string }[] = [];
  const good = (): string[] => ['--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key];

  beforeAll(async () => {
    const tlsFlags = [
      '--cert-file', certs.server.cert, '--key-file', certs.server.key,
      '--trusted-ca-file', certs.ca, '--client-cert-auth',
    ];
    for (const kind of ['etcron', 'etcd'] as const) {
      const { args, endpoint } = await memberArgs(`${kind}-client-tls`, tlsFlags);
      sides.push({ store: start(kind, args), endpoint });
    }
    await Promise.all(sides.map((s) => waitServing(s.store, s.endpoint, good())));
  });

  it('etcdctl with a client certificate from the trusted CA writes and reads, as on etcd', async () => {
    const answers: string[] = [];
    for (const side of sides) {
      const put = await etcdctlTls(side.endpoint, good(), ['put', 'greeting', 'hello']);
      const get = await etcdctlTls(side.endpoint, good(), ['get', 'greeting']);
      answers.push(`${put.code} ${put.stdout}|${get.code} ${get.stdout}`);
    }
    expect(answers[0]).toBe('0 OK\n|0 greeting\nhello\n');
    expect(answers[0]).toBe(answers[1]);
  });

  it('refuses a missing, untrusted or expired client certificate, an untrusted server and plain text, as etcd does', async () => {
    const cases: Record<string, (endpoint: string) => string[]> = {
      'no client certificate': () => ['--cacert', certs.ca],
      'client certificate from another CA': () => ['--cacert', certs.ca, '--cert', certs.untrusted.cert, '--key', certs.untrusted.key],
      'expired client certificate': () => ['--cacert', certs.ca, '--cert', certs.expired.cert, '--key', certs.expired.key],
      'server not trusted by --cacert': () => ['--cacert', certs.otherCa, '--cert', certs.client.cert, '--key', certs.client.key],
    };
    const run = (side: { endpoint: string }, tlsArgs: string[], endpoint = side.endpoint): Promise<CtlOutcome> =>
      etcdctlTls(endpoint, tlsArgs, ['put', 'refused', 'no']);
    // Every case on both stores at once: each refusal costs etcdctl its dial timeout.
    const outcomes = await Promise.all(sides.map(async (side): Promise<string[]> => {
      const lines = Object.entries(cases).map(async ([name, args]) => {
        const outcome = await run(side, args(side.endpoint));
        return `${name}: exit ${outcome.code} ${errorLine(outcome)}`;
      });
      const plain = run(side, [], side.endpoint.replace('https://', 'http://'))
        .then((outcome) => `plain text: exit ${outcome.code} ${errorLine(outcome)}`);
      return Promise.all([...lines, plain]);
    }));
    const [etcron, etcd] = outcomes as [string[], string[]];
    for (const line of etcron) expect(line).toMatch(/: exit 1 Error: context deadline exceeded$/);
    expect(etcron).toEqual(etcd);
    // Nothing got written through a refused connection.
    const get = await etcdctlTls(sides[0]?.endpoint ?? '', good(), ['get', 'refused']);
    expect(get).toMatchObject({ code: 0, stdout: '' });
    expect(sides[0]?.store.output()).toContain('CERT_HAS_EXPIRED');
  });

  it('fails the TLS handshake itself, as etcd does, for no, untrusted or expired client certificates', async () => {
    for (const side of sides) {
      const port = Number(new URL(side.endpoint).port);
      const attempts = await Promise.all([
        handshake(port, { ca: certs.ca, cert: certs.client.cert, key: certs.client.key }),
        handshake(port, { ca: certs.ca }),
        handshake(port, { ca: certs.ca, cert: certs.untrusted.cert, key: certs.untrusted.key }),
        handshake(port, { ca: certs.ca, cert: certs.expired.cert, key: certs.expired.key }),
      ]);
      expect(attempts[0], side.store.kind).toBe('ok');
      for (const attempt of attempts.slice(1)) expect(attempt, side.store.kind).toMatch(/^refused: /);
    }
  });

  it('answers /health over https only after the client certificate checks out', async () => {
    for (const side of sides) {
      expect(await health(side.endpoint, { ca: certs.ca, cert: certs.client.cert, key: certs.client.key }))
        .toBe('200 {"health":"true"}');
      expect(await health(side.endpoint, { ca: certs.ca })).toMatch(/^refused: /);
    }
  });

  it('the etcd3 client connects with --cacert/--cert/--key files and is refused without a client certificate', async () => {
    const endpoint = sides[0]?.endpoint ?? '';
    const client = createEtcdClient({
      endpoints: endpoint, env: {}, tls: { caCertFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key },
    });
    const anonymous = createEtcdClient({ endpoints: endpoint, env: {}, dialTimeoutMs: 1_000, tls: { caCertFile: certs.ca } });
    try {
      await client.put('from-etcd3').value('yes');
      expect(await client.get('from-etcd3').string()).toBe('yes');
      await expect(anonymous.put('from-anonymous').value('no')).rejects.toThrow();
    } finally {
      client.close();
      anonymous.close();
    }
  });

  it('a master (TLS files from ETCRON_* env) and a worker (etcdctl-style flags) reach the TLS store', async () => {
    const endpoint = sides[0]?.endpoint ?? '';
    const spawnDaemon = (args: string[], env: Record<string, string>): { child: ChildProcess; stdout: () => string } => {
      const child = spawn(process.execPath, [ETCRON_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      daemons.push(child);
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      child.stderr?.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      return { child, stdout: () => out };
    };
    const master = spawnDaemon(['master', '--endpoints', endpoint, '--api', '127.0.0.1:0', '--log-level', 'warn'], {
      ETCRON_CACERT: certs.ca, ETCRON_CERT: certs.client.cert, ETCRON_KEY: certs.client.key,
    });
    const worker = spawnDaemon([
      'worker', '--endpoints', endpoint, '--id', 'tls-worker', '--log-level', 'warn',
      '--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key,
    ], {});
    const ready = (d: { child: ChildProcess; stdout: () => string }, pattern: RegExp) => (): true | undefined => {
      if (d.child.exitCode !== null) throw new Error(`exited: ${d.stdout()}`);
      return pattern.test(d.stdout()) ? true : undefined;
    };
    await waitFor('master to serve', ready(master, /serving http/), 20_000);
    await waitFor('worker to start', ready(worker, /worker tls-worker started/), 20_000);
    const client = createEtcdClient({
      endpoints: endpoint, env: {}, tls: { caCertFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key },
    });
    try {
      const workers = await client.getAll().prefix('/cron/workers/').keys();
      expect(workers).toContain('/cron/workers/tls-worker');
    } finally {
      client.close();
      master.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
    }
  });

  // Last: it turns auth on for both stores.
  it('with auth enabled, a call without a token acts as the user its certificate names, as in etcd', async () => {
    const transcripts = await Promise.all(sides.map(async (side) => {
      const asRoot = ['--cacert', certs.ca, '--cert', certs.root.cert, '--key', certs.root.key];
      const lines: string[] = [];
      for (const [tlsArgs, args] of [
        [asRoot, ['user', 'add', 'root', '--new-user-password', 'secret']],
        [asRoot, ['auth', 'enable']],
        [asRoot, ['put', 'owned', 'by-root']],
        [asRoot, ['get', 'owned', '--print-value-only']],
        [good(), ['get', 'owned', '--print-value-only']],
      ] as const) {
        const outcome = await etcdctlTls(side.endpoint, tlsArgs, args);
        lines.push(`${args.join(' ')}: exit ${outcome.code} ${outcome.stdout.trim()} ${errorLine(outcome)}`);
      }
      return lines;
    }));
    expect(transcripts[0]).toEqual(transcripts[1]);
    expect(transcripts[0]?.[3]).toBe('get owned --print-value-only: exit 0 by-root ');
    expect(transcripts[0]?.[4]).toBe('get owned --print-value-only: exit 1  Error: etcdserver: permission denied');
  });
});

describe.skipIf(!hasEtcd())('TLS start-up', () => {
  it('stops with etcd\'s message for an https:// URL without certificates and for half or missing files', { timeout: 90_000 }, async () => {
    const cases: Record<string, readonly string[]> = {
      'https without certs': [],
      'cert without key': ['--cert-file', certs.server.cert],
      'missing cert file': ['--cert-file', join(dir, 'absent.crt'), '--key-file', certs.server.key],
      'key of another cert': ['--cert-file', certs.server.cert, '--key-file', certs.client.key],
    };
    const fatal = (output: string): string => {
      const line = output.split('\n').find((l) => / C \| etcdmain: |^etcron store: /.test(l)) ?? output;
      return line.replace(/^.* C \| etcdmain: /, '').replace(/^etcron store: /, '').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT');
    };
    // Each case on both stores, all at once: a refused start is quick, but process starts add up.
    const failures = Object.entries(cases).flatMap(([name, extra], index) => (['etcron', 'etcd'] as const).map(async (kind) => {
      const { args } = await memberArgs(`${kind}-bad-${index}`, extra);
      const store = start(kind, args);
      // etcd reports a bad client certificate only once its server is ready (after its own
      // election), which can take many seconds with eight members starting at once.
      const code = await Promise.race([store.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 40_000))]);
      return { name, kind, code, message: fatal(store.output()) };
    }));
    const results = await Promise.all(failures);
    for (const [name] of Object.entries(cases)) {
      const [etcron, etcd] = [results.find((r) => r.name === name && r.kind === 'etcron'), results.find((r) => r.name === name && r.kind === 'etcd')];
      expect(etcron?.code, `etcron ${name}`).toBe(1);
      expect(etcd?.code, `etcd ${name}`).not.toBe(0);
      expect(etcron?.message, name).toBe(etcd?.message);
    }
  });

  it('--auto-tls writes a self-signed certificate under <data-dir>/fixtures/client that etcdctl can trust', async () => {
    const { args, endpoint } = await memberArgs('auto', ['--auto-tls']);
    const store = start('etcron', args);
    const certFile = join(dir, 'auto.data', 'fixtures', 'client', 'cert.pem');
    await waitFor('auto TLS certificate', () => (existsSync(certFile) ? true : undefined), 20_000);
    await waitServing(store, endpoint, ['--cacert', certFile]);
    const get = await etcdctlTls(endpoint, ['--cacert', certFile], ['get', 'tls-ready', '--print-value-only']);
    expect(get).toMatchObject({ code: 0, stdout: 'yes\n' });
    expect(existsSync(join(dir, 'auto.data', 'fixtures', 'client', 'key.pem'))).toBe(true);
  });

  it('etcron up --cacert/--cert/--key serves its store over https and its worker reaches it', async () => {
    const [clientPort, apiPort] = [await freePort(), await freePort()];
    const up = spawn(process.execPath, [
      ETCRON_BIN, 'up', '--data-dir', join(dir, 'up.data'), '--client-port', String(clientPort), '--api', String(apiPort),
      '--cacert', certs.ca, '--cert', certs.server.cert, '--key', certs.server.key,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemons.push(up);
    let out = '';
    up.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    up.stderr.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    await waitFor('etcron up', () => {
      if (up.exitCode !== null) throw new Error(`exited: ${out}`);
      return out.includes('etcron is up.') ? true : undefined;
    }, 20_000);
    expect(out).toContain(`store   https://127.0.0.1:${clientPort}`);
    const clientCert = ['--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key];
    const workers = await waitFor('the worker registered', async () => {
      const get = await etcdctlTls(`https://127.0.0.1:${clientPort}`, clientCert, ['get', '--prefix', '/cron/workers/', '--keys-only']);
      return get.stdout.trim() === '' ? undefined : get.stdout;
    }, 10_000, 100);
    expect(workers).toMatch(/^\/cron\/workers\//);
    up.kill('SIGTERM');
  });
});

describe.skipIf(!hasEtcd())('3 members over https:// peer URLs with --peer-client-cert-auth', () => {
  it('elect a leader and replicate a write', async () => {
    const names = ['p1', 'p2', 'p3'];
    const ports = await Promise.all(names.map(async () => ({ client: await freePort(), peer: await freePort() })));
    const peerUrl = (i: number): string => `https://127.0.0.1:${ports[i]?.peer ?? 0}`;
    const clientUrl = (i: number): string => `http://127.0.0.1:${ports[i]?.client ?? 0}`;
    // etcdctl is given host:port: with an http:// endpoint it sends the scheme in :authority.
    const endpoint = (i: number): string => `127.0.0.1:${ports[i]?.client ?? 0}`;
    const cluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
    const stores = names.map((name, i) => start('etcron', [
      '--name', name, '--data-dir', join(dir, `${name}.data`),
      '--listen-client-urls', clientUrl(i), '--advertise-client-urls', clientUrl(i),
      '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i), '--initial-cluster', cluster,
      '--peer-cert-file', certs.server.cert, '--peer-key-file', certs.server.key,
      '--peer-trusted-ca-file', certs.ca, '--peer-client-cert-auth',
      '--heartbeat-interval', '100', '--election-timeout', '1000',
    ]));
    const leaders = await waitFor('one leader known to all members', async () => {
      const statuses = await Promise.all(names.map((_, i) => etcdctlTls(endpoint(i), [], ['endpoint', 'status', '-w', 'json'])));
      const ids = statuses.map((s) => /"leader":(\d+)/.exec(s.stdout)?.[1]);
      return ids.every((id) => id !== undefined && id !== '0' && id === ids[0]) ? ids : undefined;
    }, 30_000, 200);
    expect(new Set(leaders).size).toBe(1);
    const put = await etcdctlTls(endpoint(0), [], ['put', 'replicated', 'over-tls']);
    expect(put.code).toBe(0);
    for (const i of [1, 2]) {
      await waitFor(`the write on member ${i + 1}`, async () => {
        const get = await etcdctlTls(endpoint(i), [], ['get', 'replicated', '--print-value-only', '--consistency', 's']);
        return get.stdout === 'over-tls\n' ? true : undefined;
      }, 10_000, 100);
    }
    // The peer port completes a handshake only for a certificate from the peer CA.
    const peerPort = ports[0]?.peer ?? 0;
    expect(await handshake(peerPort, { ca: certs.ca, cert: certs.server.cert, key: certs.server.key })).toBe('ok');
    expect(await handshake(peerPort, { ca: certs.ca })).toMatch(/^refused: /);
    expect(await handshake(peerPort, { ca: certs.ca, cert: certs.untrusted.cert, key: certs.untrusted.key }))
      .toMatch(/^refused: /);
    for (const store of stores) expect(store.child.exitCode).toBeNull();
  });
});
