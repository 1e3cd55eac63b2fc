import { Metadata } from '@grpc/grpc-js';
import { encodeLiterals, type HeaderList } from '../h2/hpack.js';

/**
 * gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md) as the server writes it: header blocks in HPACK
 * literals that need no table state (never indexed, never Huffman), the 5-byte message prefix,
 * grpc-timeout, and the request headers that become metadata.
 */

/** `:status: 200` (static table entry 8) and `content-type: application/grpc` (name: entry 31). */
export const RESPONSE_HEADERS_BLOCK = Buffer.concat([
  Buffer.from([0x88, 0x0f, 0x10, 16]), Buffer.from('application/grpc', 'latin1'),
]);

/** Go's encoding of grpc-message: bytes outside printable ASCII, and '%', as %XX. */
export function percentEncode(message: string): Buffer {
  const bytes = Buffer.from(message, 'utf8');
  let isPlain = true;
  for (const byte of bytes) {
    if (byte < 0x20 || byte > 0x7e || byte === 0x25) {
      isPlain = false;
      break;
    }
  }
  if (isPlain) return bytes;
  let out = '';
  for (const byte of bytes) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return Buffer.from(out, 'latin1');
}

/** The trailer block of a finished call; with `withResponseHeaders`, a trailers-only answer. */
export function statusBlock(code: number, message: string, withResponseHeaders: boolean): Buffer {
  const fields: HeaderList = [['grpc-status', String(code)]];
  if (message !== '') fields.push(['grpc-message', percentEncode(message).toString('latin1')]);
  const block = encodeLiterals(fields);
  return withResponseHeaders ? Buffer.concat([RESPONSE_HEADERS_BLOCK, block]) : block;
}

/** `grpc-status: 0`, the trailer block of nearly every call. */
export const OK_TRAILERS_BLOCK = statusBlock(0, '', false);

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** grpc-timeout ("100m", at most 8 digits and a unit) in milliseconds; null when malformed. */
export function parseGrpcTimeout(value: string): number | null {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return null;
  return Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number);
}

/** Headers that are HTTP/2's or gRPC's own, not the application's metadata (as grpc-js drops them). */
const TRANSPORT_HEADERS = new Set([
  'content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding',
]);

/** What the handlers see of a request's headers. */
export interface RequestHead {
  readonly path: string;
  readonly authority: string;
  readonly contentType: string;
  readonly timeout: string | null;
  readonly encoding: string | null;
  readonly metadata: Metadata;
}

export function requestHead(headers: HeaderList): RequestHead {
  let path = '';
  let authority = '';
  let contentType = '';
  let timeout: string | null = null;
  let encoding: string | null = null;
  const metadata = new Metadata();
  for (const [name, value] of headers) {
    if (name.charCodeAt(0) === 0x3a) {
      if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'content-type') contentType = value;
    else if (name === 'grpc-timeout') timeout = value;
    else if (name === 'grpc-encoding') encoding = value;
    if (TRANSPORT_HEADERS.has(name)) continue;
    addMetadata(metadata, name, value);
  }
  return { path, authority, contentType, timeout, encoding, metadata };
}

function addMetadata(metadata: Metadata, name: string, value: string): void {
  try {
    if (name.endsWith('-bin')) {
      for (const part of value.split(',')) metadata.add(name, Buffer.from(part, 'base64'));
    } else {
      metadata.add(name, value);
    }
  } catch {
    // A name grpc-js refuses as metadata (upper case, odd characters) is left out, as it does.
  }
}
