import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { TlsMaterial } from './tls-config.js';

/**
 * --peer-cert-allowed-cn / --peer-cert-allowed-hostname, as etcd applies them: a member talks
 * only to members whose certificate (verified by the peer CA first) has that common name, or is
 * valid for that hostname (subject alternative names, else the common name). Checked on calls
 * this member serves and on servers it dials. Returns why a certificate is refused, or null.
 */
export function peerCertificateRefusal(allowed: TlsMaterial['allowedPeer'], cert: PeerCertificate | undefined): string | null {
  if (allowed === null) return null;
  if (cert === undefined || Object.keys(cert).length === 0) return 'client certificate authentication failed: no certificate';
  if ('commonName' in allowed) {
    const cn = cert.subject?.CN;
    return cn === allowed.commonName ? null : `client certificate authentication failed: CN ${JSON.stringify(cn ?? '')} is not ${JSON.stringify(allowed.commonName)}`;
  }
  const mismatch = checkServerIdentity(allowed.hostname, cert);
  return mismatch === undefined ? null : `client certificate authentication failed: not valid for ${allowed.hostname}`;
}

/** How a refused peer certificate is reported, on calls and on links (etcd's handshake error). */
export function badCertificate(refusal: string): string {
  return `tls: bad certificate (${refusal})`;
}
