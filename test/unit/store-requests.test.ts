import { serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../shared/random.js';
import { decodeEnvelope, encodeEnvelope, requestIdOf, type InternalRequest } from '../../store/server/requests.js';
import type { Compare, RangeRequest, RequestOp, TxnRequest } from '../../store/mvcc/types.js';

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

  const pick = <T>(list: readonly T[]): T => list[random.int(list.length)] as T;
  const number = (): number => pick([0, 1, -1, 42, 2 ** 53 - 1, 9223372036854775807, 1.5]);

  function randomCompare(): Compare {
    const target = pick(['version', 'create', 'mod', 'value', 'lease'] as const);
    const operand = target === 'value' ? bytes(20) : target === 'lease' ? pick([0n, 7n, -3n, 0x7fffffffffffffffn]) : number();
    return { result: pick(['equal', 'greater', 'less', 'not-equal', 'always'] as const), target, key: bytes(20), rangeEnd: bytes(3), operand };
  }

  function randomRange(): RangeRequest {
    return {
      key: bytes(20), rangeEnd: bytes(5), limit: number(), revision: number(),
      sortOrder: pick(['none', 'ascend', 'descend'] as const), sortTarget: pick(['key', 'version', 'create', 'mod', 'value'] as const),
      serializable: random.int(2) === 1, keysOnly: random.int(2) === 1, countOnly: random.int(2) === 1,
      minModRevision: number(), maxModRevision: number(), minCreateRevision: number(), maxCreateRevision: number(),
    };
  }

  function randomOp(depth: number): RequestOp {
    switch (random.int(depth < 2 ? 4 : 3)) {
      case 0: return { type: 'range', request: randomRange() };
      case 1: return {
        type: 'put',
        request: {
          key: bytes(30), value: bytes(400), lease: pick([0n, 5n, -5n, 0x7fffffffffffffffn]),
          prevKv: random.int(2) === 1, ignoreValue: random.int(2) === 1, ignoreLease: random.int(2) === 1,
        },
      };
      case 2: return { type: 'delete-range', request: { key: bytes(20), rangeEnd: bytes(20), prevKv: random.int(2) === 1 } };
      default: return { type: 'txn', request: randomTxn(depth + 1) };
    }
  }

  function randomTxn(depth: number): TxnRequest {
    return {
      compare: Array.from({ length: random.int(4) }, randomCompare),
      success: Array.from({ length: random.int(4) }, () => randomOp(depth)),
      failure: Array.from({ length: random.int(3) }, () => randomOp(depth)),
    };
  }

  it('round-trips txns (nested, every op, enum and operand kind) with and without auth, compactly', () => {
    for (let i = 0; i < 400; i++) {
      const request: InternalRequest = {
        type: 'txn',
        request: randomTxn(0),
        ...(random.int(2) === 1 ? { auth: { username: pick(['root', 'ü-ser', '']), revision: random.int(1000) } } : {}),
      };
      const requestId = BigInt(random.int(2 ** 30)) << 20n;
      const data = encodeEnvelope({ requestId, request });
      expect(data[8]).toBe(0x02);
      expect(requestIdOf(data)).toBe(requestId);
      expect(decodeEnvelope(data)).toEqual({ requestId, request });
    }
  });

  it('keeps a txn the compact layout cannot hold in v8 form, and decodes txns written in v8 form', () => {
    const put = { key: Buffer.from('k'), value: Buffer.from('v'), lease: 2n ** 70n, prevKv: false, ignoreValue: false, ignoreLease: false };
    const wide: InternalRequest = { type: 'txn', request: { compare: [], success: [{ type: 'put', request: put }], failure: [] } };
    const data = encodeEnvelope({ requestId: 4n, request: wide });
    expect(data[8]).toBe(0xff);
    expect(decodeEnvelope(data)).toEqual({ requestId: 4n, request: wide });
    const txn: InternalRequest = { type: 'txn', request: randomTxn(0), auth: { username: 'root', revision: 3 } };
    const body = serialize(txn);
    const legacy = Buffer.alloc(8 + body.length);
    legacy.writeBigUInt64BE(5n, 0);
    body.copy(legacy, 8);
    expect(decodeEnvelope(legacy)).toEqual({ requestId: 5n, request: txn });
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
