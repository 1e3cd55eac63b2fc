import type { Wire } from './codec.js';

/**
 * A hand-written decoder for PutRequest, the most frequent request, giving the object
 * proto-loader gives (keepCase, longs as decimal strings, defaults on): proto-loader decodes an
 * int64 into a Long and then formats it, for a lease that is almost always absent. Anything but
 * the plain encoding of the six known fields (an unknown field, another wire type, a varint too
 * long for a double, a field running past the end) returns null, and the caller decodes it with
 * proto-loader, which keeps its answers and its errors for those.
 */

const EMPTY: Buffer = Buffer.alloc(0);
/** Varints of up to 7 bytes (49 bits) are read as doubles, exactly. */
const VARINT_BYTES_MAX = 7;

export function decodePutRequest(bytes: Buffer): Wire | null {
  let key: Buffer = EMPTY;
  let value: Buffer = EMPTY;
  let lease = 0;
  let prevKv = false;
  let ignoreValue = false;
  let ignoreLease = false;
  let at = 0;
  const end = bytes.length;
  // Reads a varint at `at` into `read`, or fails (returns false) for one that needs more bits.
  let read = 0;
  const varint = (): boolean => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX && at < end; i++) {
      const byte = bytes[at++] as number;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        read = result;
        return true;
      }
      scale *= 0x80;
    }
    return false;
  };
  while (at < end) {
    const tag = bytes[at++] as number;
    if (tag === 0x0a || tag === 0x12) {
      if (!varint() || at + read > end) return null;
      const field = bytes.subarray(at, at + read);
      at += read;
      if (tag === 0x0a) key = field;
      else value = field;
    } else if (tag === 0x18 || tag === 0x20 || tag === 0x28 || tag === 0x30) {
      if (!varint()) return null;
      if (tag === 0x18) lease = read;
      else if (tag === 0x20) prevKv = read !== 0;
      else if (tag === 0x28) ignoreValue = read !== 0;
      else ignoreLease = read !== 0;
    } else {
      return null;
    }
  }
  return {
    key, value, lease: lease === 0 ? '0' : String(lease), prev_kv: prevKv, ignore_value: ignoreValue,
    ignore_lease: ignoreLease,
  };
}
