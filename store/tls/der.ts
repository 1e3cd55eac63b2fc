import { assert } from '../../shared/assert.js';

/**
 * The few DER (ITU-T X.690) encodings an X.509 certificate needs. Every function returns one
 * complete tag-length-value; `sequence` and friends take already encoded children.
 */

const TAG_BOOLEAN = 0x01;
const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_UTF8_STRING = 0x0c;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;

/** Lengths above this would mean a certificate of 16 MiB: far beyond anything we build. */
const LENGTH_BYTES_MAX = 3;

export function tagged(tag: number, content: Uint8Array): Buffer {
  assert(Number.isInteger(tag) && tag >= 0 && tag <= 0xff, 'DER tag is one byte');
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  assert(bytes.length <= LENGTH_BYTES_MAX, 'DER length fits in three bytes');
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function sequence(...children: readonly Uint8Array[]): Buffer {
  return tagged(TAG_SEQUENCE, Buffer.concat(children));
}

export function set(...children: readonly Uint8Array[]): Buffer {
  return tagged(TAG_SET, Buffer.concat(children));
}

/** A context-specific constructed tag, [n] EXPLICIT. */
export function explicit(tagNumber: number, child: Uint8Array): Buffer {
  assert(tagNumber >= 0 && tagNumber < 31, 'low tag number');
  return tagged(0xa0 | tagNumber, child);
}

/** A context-specific primitive tag, [n] IMPLICIT over raw content bytes. */
export function implicit(tagNumber: number, content: Uint8Array): Buffer {
  assert(tagNumber >= 0 && tagNumber < 31, 'low tag number');
  return tagged(0x80 | tagNumber, content);
}

export function boolean(value: boolean): Buffer {
  return tagged(TAG_BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

/** A non-negative INTEGER from its big-endian magnitude (a 0x00 is prefixed when the top bit is set). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = Buffer.from(magnitude.subarray(start));
  assert(trimmed.length > 0, 'INTEGER has at least one byte');
  const needsPad = ((trimmed[0] as number) & 0x80) !== 0;
  return tagged(TAG_INTEGER, needsPad ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function smallInteger(value: number): Buffer {
  assert(Number.isInteger(value) && value >= 0 && value < 128, 'small non-negative INTEGER');
  return tagged(TAG_INTEGER, Buffer.from([value]));
}

/** A BIT STRING whose last `unusedBits` bits are padding. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  assert(unusedBits >= 0 && unusedBits < 8, 'unused bits are 0..7');
  return tagged(TAG_BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tagged(TAG_OCTET_STRING, bytes);
}

export function utf8String(text: string): Buffer {
  return tagged(TAG_UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** An OBJECT IDENTIFIER from dotted text, e.g. "2.5.29.17". */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => Number(arc));
  assert(arcs.length >= 2 && arcs.every((a) => Number.isSafeInteger(a) && a >= 0), `OID ${dotted}`);
  const [first, second, ...rest] = arcs as [number, number, ...number[]];
  const bytes: number[] = [first * 40 + second];
  for (const arc of rest) {
    const groups: number[] = [arc % 128];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) {
      groups.unshift(0x80 | (value % 128));
    }
    bytes.push(...groups);
  }
  return tagged(TAG_OID, Buffer.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always in seconds and Z. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const pad = (n: number): string => String(n).padStart(2, '0');
  const rest =
    pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes()) + pad(date.getUTCSeconds()) + 'Z';
  if (year >= 1950 && year < 2050) return tagged(TAG_UTC_TIME, Buffer.from(pad(year % 100) + rest, 'ascii'));
  assert(year >= 2050 && year <= 9999, 'certificate time within 1950..9999');
  return tagged(TAG_GENERALIZED_TIME, Buffer.from(String(year) + rest, 'ascii'));
}
