import { describe, expect, it } from 'vitest';
import { crc32c } from '../../store/wire/crc32c.js';

/** The textbook bytewise CRC-32C, to hold the eight-bytes-a-step version to. */
function bytewise(bytes: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0x82f63b78 ^ (crc >>> 1) : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('CRC-32C', () => {
  it('gives the check value of "123456789" (0xE3069283)', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('equals the bytewise CRC for every length and split point, continued or not', () => {
    const bytes = Buffer.from(Array.from({ length: 67 }, (_, i) => (i * 151 + 7) & 0xff));
    for (let length = 0; length <= bytes.length; length++) {
      const input = bytes.subarray(0, length);
      expect(crc32c(input), `length ${length}`).toBe(bytewise(input));
      for (let cut = 0; cut <= length; cut += 5) {
        expect(crc32c(input.subarray(cut), crc32c(input.subarray(0, cut)))).toBe(bytewise(input));
      }
    }
  });

  it('over bytes[start, end) equals the CRC of that subarray, continued or not', () => {
    const bytes = Buffer.from(Array.from({ length: 45 }, (_, i) => (i * 37 + 11) & 0xff));
    for (let start = 0; start <= bytes.length; start += 3) {
      for (let end = start; end <= bytes.length; end += 4) {
        const part = bytes.subarray(start, end);
        expect(crc32c(bytes, 0, start, end), `${start}-${end}`).toBe(bytewise(part));
        const continued = crc32c(bytes, 0x1234_5678, start, end);
        expect(continued, `${start}-${end} continued`).toBe(bytewise(part, 0x1234_5678));
      }
    }
  });
});
