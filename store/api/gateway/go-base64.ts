import { GoJsonError } from './go-json.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE_MAP: readonly number[] = Array.from({ length: 256 }, (_, c) =>
  ALPHABET.indexOf(String.fromCharCode(c)),
);

function corrupt(offset: number): GoJsonError {
  return new GoJsonError(`illegal base64 data at input byte ${offset}`);
}

const isNewline = (c: number | undefined): boolean => c === 0x0a || c === 0x0d;

/**
 * Standard padded base64 as Go's base64.StdEncoding decodes it for encoding/json: CR and LF are
 * skipped, anything else outside the alphabet is refused with the offset Go reports (clients and
 * etcd's tests see "illegal base64 data at input byte N").
 */
export function decodeGoBase64(text: string): Buffer {
  return decodeBytes(Buffer.from(text, 'utf8'));
}

function decodeBytes(src: Buffer): Buffer {
  const out: number[] = [];
  let si = 0;
  while (si < src.length) {
    const quantum: number[] = [];
    let done = false;
    while (quantum.length < 4) {
      if (si === src.length) {
        if (quantum.length === 0) return Buffer.from(out);
        throw corrupt(si - quantum.length);
      }
      const c = src[si] as number;
      si++;
      const value = DECODE_MAP[c] ?? -1;
      if (value >= 0) {
        quantum.push(value);
        continue;
      }
      if (isNewline(c)) continue;
      if (c !== 0x3d) throw corrupt(si - 1);
      // Padding: only after two or three symbols, and it ends the input.
      if (quantum.length < 2) throw corrupt(si - 1);
      if (quantum.length === 2) {
        while (si < src.length && isNewline(src[si])) si++;
        if (si === src.length) throw corrupt(src.length);
        if (src[si] !== 0x3d) throw corrupt(si - 1);
        si++;
      }
      while (si < src.length && isNewline(src[si])) si++;
      if (si < src.length) throw corrupt(si);
      done = true;
      break;
    }
    const [a = 0, b = 0, c = 0, d = 0] = quantum;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    const bytes = quantum.length - 1;
    if (bytes >= 1) out.push((bits >> 16) & 0xff);
    if (bytes >= 2) out.push((bits >> 8) & 0xff);
    if (bytes >= 3) out.push(bits & 0xff);
    if (done) break;
  }
  return Buffer.from(out);
}
