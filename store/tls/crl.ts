/**
 * The serial numbers a certificate revocation list revokes, read from its DER (or PEM) form with
 * a minimal DER walk: etcd checks a client certificate's serial against the list after the
 * handshake and ignores the list's own dates, so we do the same (Node's built-in CRL check would
 * also refuse every certificate once the list's nextUpdate has passed).
 *
 * CertificateList ::= SEQUENCE { tbsCertList SEQUENCE { [version INTEGER], signature SEQUENCE,
 *   issuer SEQUENCE, thisUpdate Time, [nextUpdate Time], [revokedCertificates SEQUENCE OF
 *   SEQUENCE { userCertificate INTEGER, ... }], [[0] extensions] }, ... }
 */
export class CrlFormatError extends Error {
  override readonly name = 'CrlFormatError';
}

interface Element { readonly tag: number; readonly start: number; readonly end: number; readonly next: number }

function element(der: Buffer, at: number): Element {
  if (at + 2 > der.length) throw new CrlFormatError('truncated DER');
  const tag = der[at] as number;
  let length = der[at + 1] as number;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > der.length) throw new CrlFormatError('bad DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + (der[start + i] as number);
    start += bytes;
  }
  const end = start + length;
  if (end > der.length) throw new CrlFormatError('DER element past the end');
  return { tag, start, end, next: end };
}

function children(der: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = element(der, at);
    out.push(child);
    at = child.next;
  }
  return out;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

function derOf(file: Buffer): Buffer {
  const text = file.toString('latin1');
  const match = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  return match === null ? file : Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64');
}

/** Revoked serial numbers as lowercase hex without leading zeros (as X509Certificate prints them, lowercased). */
export function revokedSerials(file: Buffer): Set<string> {
  const der = derOf(file);
  const list = element(der, 0);
  const tbs = children(der, list)[0];
  if (list.tag !== SEQUENCE || tbs === undefined || tbs.tag !== SEQUENCE) throw new CrlFormatError('not a certificate revocation list');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === INTEGER ? 1 : 0; // version
  i += 2; // signature algorithm, issuer
  i += 1; // thisUpdate
  if (fields[i]?.tag === UTC_TIME || fields[i]?.tag === GENERALIZED_TIME) i++; // nextUpdate
  const serials = new Set<string>();
  const revoked = fields[i];
  if (revoked === undefined || revoked.tag !== SEQUENCE) return serials;
  for (const entry of children(der, revoked)) {
    const serial = children(der, entry)[0];
    if (serial === undefined || serial.tag !== INTEGER) throw new CrlFormatError('revoked entry without a serial number');
    serials.add(normalizeSerial(der.subarray(serial.start, serial.end).toString('hex')));
  }
  return serials;
}

export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}
