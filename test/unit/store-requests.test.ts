import { serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../shared/random.js';
import { decodeEnvelope, encodeEnvelope, requestIdOf, type InternalRequest } from '../../store/server/requests.js';

/**
 * Log entries are decoded by every member (and again after a restart): a request must come back
 * exactly as it was proposed, whatever its bytes, and entries written in the older all-v8 layout
 * must still decode.
 */
describe('log entry encoding', () => {
  const random = seededRandom(7);
  const bytes = (max: number): Buffer => Buffer.from(Array.from({ length: random.int(max) }, () => random.int(256)));

  it('round-trips puts with every flag, lease and auth combination', () => {
    for (let i = 0; i < 500; i++) {
      const request: InternalRequest = {
        type: 'put',
        request: {
          key: bytes(40),
          value: bytes(300),
          lease: [0n, 1n, 0x7fffffffffffffffn, -5n][random.int(4)] as bigint,
          prevKv: random.int(2) === 1,
          ignoreValue: random.int(2) === 1,
          ignoreLease: random.int(2) === 1,
        },
        ...(random.int(2) === 1 ? { auth: { username: ['root', 'ü-ser', ''][random.int(3)] as string, revision: random.int(1000) } } : {}),
      };
      const requestId = BigInt(random.int(2 ** 30)) << 20n;
      const data = encodeEnvelope({ requestId, request });
      expect(requestIdOf(data)).toBe(requestId);
      expect(decodeEnvelope(data)).toEqual({ requestId, request });
    }
  });

  it('keeps other requests in v8 form, and decodes puts written in the older v8 layout', () => {
    const txn: InternalRequest = { type: 'compact', revision: 42 };
    expect(decodeEnvelope(encodeEnvelope({ requestId: 9n, request: txn }))).toEqual({ requestId: 9n, request: txn });
    const put: InternalRequest = {
      type: 'put',
      request: { key: Buffer.from('k'), value: Buffer.from('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false },
    };
    const body = serialize(put);
    const legacy = Buffer.alloc(8 + body.length);
    legacy.writeBigUInt64BE(3n, 0);
    body.copy(legacy, 8);
    expect(decodeEnvelope(legacy)).toEqual({ requestId: 3n, request: put });
  });
});
