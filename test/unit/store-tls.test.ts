// Issue #7: etcd's TLS flags as etcd 3.4 parses and checks them, and the --auto-tls certificate.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseStoreFlags, type TlsFlags } from '../../store/flags.js';
import { SELF_SIGNED_VALIDITY_MS, createSelfSignedCert } from '../../store/tls/self-signed-cert.js';
import { TlsConfigError, resolveTls } from '../../store/tls/tls-config.js';

const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'etcron-tls-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const noTls: TlsFlags = { certFile: '', keyFile: '', trustedCaFile: '', isClientCertAuth: false, isAutoTls: false, crlFile: '' };

describe('TLS flags in Go flag syntax', () => {
  it('a boolean flag alone is true, =false turns it off, and it never takes the next argument', () => {
    expect(parseStoreFlags(['--client-cert-auth'], {}).clientTls.isClientCertAuth).toBe(true);
    expect(parseStoreFlags(['-peer-auto-tls=false'], {}).peerTls.isAutoTls).toBe(false);
    expect(parseStoreFlags(['--auto-tls', '--name', 'n1'], {})).toMatchObject({ name: 'n1', clientTls: { isAutoTls: true } });
    // As Go's flag package: a flag given twice keeps the later value (etcd's e2e tests repeat some).
    expect(parseStoreFlags(['--client-cert-auth', '--name', 'a', '--client-cert-auth=false', '--name', 'b'], {}))
      .toMatchObject({ name: 'b', clientTls: { isClientCertAuth: false } });
    expect(() => parseStoreFlags(['--client-cert-auth', 'true'], {})).toThrow('unexpected argument "true"');
  });

  it('takes ETCD_* variables and refuses what strconv.ParseBool refuses, with etcd\'s message', () => {
    const flags = parseStoreFlags([], { ETCD_PEER_CLIENT_CERT_AUTH: 'T', ETCD_CERT_FILE: 's.crt', ETCD_KEY_FILE: 's.key' });
    expect(flags.peerTls.isClientCertAuth).toBe(true);
    expect(flags.clientTls).toMatchObject({ certFile: 's.crt', keyFile: 's.key', isClientCertAuth: false });
    expect(() => parseStoreFlags(['--auto-tls=maybe'], {})).toThrow('invalid boolean value "maybe" for -auto-tls: parse error');
  });
});

describe('resolveTls: the checks etcd 3.4 makes at start', () => {
  const now = new Date();
  it('refuses https:// URLs without certificates with etcd\'s words, for clients and peers', () => {
    expect(() => resolveTls('client', noTls, ['https://127.0.0.1:2379'], dir, silent, now)).toThrow(
      'TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme',
    );
    expect(() => resolveTls('peer', noTls, ['https://127.0.0.1:2380'], dir, silent, now)).toThrow(
      'cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented',
    );
    expect(resolveTls('client', noTls, ['http://127.0.0.1:2379'], dir, silent, now)).toBeNull();
  });

  it('refuses half a pair and files that are missing', () => {
    const half = { ...noTls, certFile: 'server.crt' };
    expect(() => resolveTls('client', half, [], dir, silent, now)).toThrow('KeyFile and CertFile must both be present[key: , cert: server.crt]');
    const missing = { ...noTls, certFile: join(dir, 'absent.crt'), keyFile: join(dir, 'absent.key') };
    expect(() => resolveTls('client', missing, [], dir, silent, now)).toThrow(TlsConfigError);
    expect(() => resolveTls('client', missing, [], dir, silent, now)).toThrow(`open ${join(dir, 'absent.crt')}: no such file or directory`);
  });

  it('--auto-tls writes cert.pem and key.pem under <data-dir>/fixtures/<side> and reuses them on the next start', () => {
    const auto = { ...noTls, isAutoTls: true };
    const first = resolveTls('peer', auto, ['https://127.0.0.1:2380'], dir, silent, now);
    const again = resolveTls('peer', auto, ['https://127.0.0.1:2380'], dir, silent, now);
    expect(first?.isSelfSigned).toBe(true);
    expect(again?.cert.equals(first?.cert ?? Buffer.alloc(0))).toBe(true);
    expect(readFileSync(join(dir, 'fixtures', 'peer', 'cert.pem')).equals(first?.cert ?? Buffer.alloc(0))).toBe(true);
  });
});

describe('the self-signed certificate', () => {
  it('names the listen hosts, is not a CA, lasts a year and verifies with its own key', () => {
    const notBefore = new Date('2026-01-01T00:00:00Z');
    const made = createSelfSignedCert(['127.0.0.1', 'localhost', '::1'], notBefore);
    const cert = new X509Certificate(made.certPem);
    expect(cert.subjectAltName).toBe('IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.subject).toBe('O=etcd');
    expect(cert.issuer).toBe('O=etcd');
    expect(cert.ca).toBe(false);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe(SELF_SIGNED_VALIDITY_MS);
    expect(cert.verify(cert.publicKey)).toBe(true);
  });
});
