import { X509Certificate, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { assert } from '../../shared/assert.js';
import {
  bitString, boolean, explicit, implicit, octetString, oid, sequence, set, smallInteger, time,
  unsignedInteger, utf8String,
} from './der.js';

/**
 * A self-signed certificate for --auto-tls, built here rather than by shelling out to `openssl`:
 * a member must start on hosts and images without the openssl CLI, and the result is checked
 * with node:crypto's own X.509 parser before it is used. Like etcd's auto TLS it is an EC key,
 * subject and issuer O=etcd, key usage digitalSignature+keyEncipherment, not a CA, with the
 * listen hosts as subject alternative names. We use P-256/SHA-256 (etcd: P-521/SHA-512), which
 * every TLS stack accepts, and add clientAuth so that a peer certificate also works as a client one.
 */
export interface SelfSignedCert {
  readonly certPem: string;
  readonly keyPem: string;
}

/** etcd 3.4 makes auto TLS certificates valid for one year. */
export const SELF_SIGNED_VALIDITY_MS = 365 * 24 * 3600 * 1000;
/** RFC 5280 §4.1.2.2: serials are positive and at most 20 bytes; 16 random bytes as Go does. */
const SERIAL_BYTES = 16;
/** How many subject alternative names a member may ask for: one per listen URL, bounded. */
const HOSTS_MAX = 64;

const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_ORGANIZATION = '2.5.4.10';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Key usage bits 0 (digitalSignature) and 2 (keyEncipherment): 1010 0000, 5 unused bits. */
const KEY_USAGE_BITS = Buffer.from([0xa0]);
const KEY_USAGE_UNUSED_BITS = 5;

export function createSelfSignedCert(hosts: readonly string[], notBefore: Date): SelfSignedCert {
  assert(hosts.length > 0 && hosts.length <= HOSTS_MAX, 'a self-signed certificate names 1..64 hosts');
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const algorithm = sequence(oid(OID_ECDSA_WITH_SHA256));
  const name = sequence(set(sequence(oid(OID_ORGANIZATION), utf8String('etcd'))));
  const tbs = sequence(
    explicit(0, smallInteger(2)), // version 3
    unsignedInteger(serial()),
    algorithm,
    name,
    sequence(time(notBefore), time(new Date(notBefore.getTime() + SELF_SIGNED_VALIDITY_MS))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...extensions(hosts))),
  );
  const signature = sign('sha256', tbs, privateKey); // DER-encoded ECDSA-Sig-Value
  const der = sequence(tbs, algorithm, bitString(signature));
  const certPem = toPem('CERTIFICATE', der);
  const parsed = new X509Certificate(certPem);
  assert(parsed.verify(publicKey) && parsed.checkPrivateKey(privateKey), 'self-signed certificate verifies');
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  assert(typeof keyPem === 'string', 'PEM export is text');
  return { certPem, keyPem };
}

function serial(): Buffer {
  const bytes = randomBytes(SERIAL_BYTES);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01; // positive and never shortened below 16 bytes
  return bytes;
}

function extension(id: string, isCritical: boolean, value: Buffer): Buffer {
  return isCritical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function extensions(hosts: readonly string[]): Buffer[] {
  return [
    extension(OID_KEY_USAGE, true, bitString(KEY_USAGE_BITS, KEY_USAGE_UNUSED_BITS)),
    extension(OID_EXT_KEY_USAGE, false, sequence(oid(OID_SERVER_AUTH), oid(OID_CLIENT_AUTH))),
    extension(OID_BASIC_CONSTRAINTS, true, sequence()),
    extension(OID_SUBJECT_ALT_NAME, false, sequence(...hosts.map(generalName))),
  ];
}

/** RFC 5280 GeneralName: dNSName [2] IA5String or iPAddress [7] OCTET STRING (4 or 16 bytes). */
function generalName(host: string): Buffer {
  const family = isIP(host);
  if (family === 4) return implicit(7, Buffer.from(host.split('.').map((part) => Number(part))));
  if (family === 6) return implicit(7, ipv6Bytes(host));
  return implicit(2, Buffer.from(host, 'ascii'));
}

function ipv6Bytes(raw: string): Buffer {
  // The WHATWG URL parser writes IPv6 in hex groups only (an embedded IPv4 tail becomes two groups).
  const address = new URL(`http://[${raw}]/`).hostname.slice(1, -1);
  const [head = '', tail = ''] = address.includes('::') ? address.split('::') : [address, ''];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = parse(tail);
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  assert(groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff), `IPv6 address ${address}`);
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
