import { DEFAULT_CIPHERS } from 'node:tls';

/**
 * --cipher-suites: Go's names for the TLS 1.2 (and older) suites etcd 3.4 accepts, as OpenSSL
 * names them. As in Go, the list governs TLS 1.2 only: TLS 1.3 keeps its own fixed suites.
 */
const OPENSSL_NAMES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_RC4_128_SHA: 'RC4-SHA',
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: 'ECDHE-ECDSA-RC4-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: 'ECDHE-RSA-RC4-SHA',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/** TLS 1.3 suites (their names start with TLS_ in OpenSSL's list syntax), kept from Node's defaults. */
const TLS13_SUITES = DEFAULT_CIPHERS.split(':').filter((name) => name.startsWith('TLS_'));

export class CipherSuiteError extends Error {
  override readonly name = 'CipherSuiteError';
}

/**
 * The OpenSSL cipher list for a comma-separated list of Go suite names; '' keeps the defaults.
 * An unknown name is refused with etcd's wording.
 */
export function openSslCipherList(goNames: string): string | undefined {
  const names = goNames.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  if (names.length === 0) return undefined;
  const tls12 = names.map((name) => {
    const openSsl = OPENSSL_NAMES[name];
    if (openSsl === undefined) throw new CipherSuiteError(`unexpected TLS cipher suite ${JSON.stringify(name)}`);
    return openSsl;
  });
  // etcd serves HTTP/2 over TLS, whose Go server refuses a 1.2 list without one of these (etcd
  // then stops at start, with a nil-logger panic in 3.4); say it plainly instead.
  if (!names.includes('TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256') && !names.includes('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256')) {
    throw new CipherSuiteError('the list is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)');
  }
  return [...TLS13_SUITES, ...new Set(tls12)].join(':');
}
