import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { encodeKv, encodeTxnResult, type Wire } from '../../store/api/codec.js';
import { KV_RESPONSE_ENCODERS } from '../../store/api/kv-response-encoder.js';
import type { KeyValue, ResponseOp, TxnResult } from '../../store/mvcc/types.js';
import { seededRandom } from '../../shared/random.js';

type Random = ReturnType<typeof seededRandom>;

const protoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'store', 'api', 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target);
root.loadSync('rpc.proto', { keepCase: true });

/** Decodes with proto-loader's options; zeros left out and zeros written decode alike. */
function decoded(typeName: string, bytes: Buffer): unknown {
  const type = root.lookupType(`etcdserverpb.${typeName}`);
  return type.toObject(type.decode(bytes), { longs: String, bytes: String, defaults: true, oneofs: true });
}

/** What proto-loader puts on the wire for the same object. */
function reference(typeName: string, wire: Wire): Buffer {
  const type = root.lookupType(`etcdserverpb.${typeName}`);
  return Buffer.from(type.encode(type.fromObject(wire)).finish());
}

function randomKv(random: Random): KeyValue {
  const modRevision = 1 + random.int(1_000_000);
  return {
    key: Buffer.from(Array.from({ length: random.int(60) }, () => random.int(256))),
    createRevision: random.int(3) === 0 ? 0 : 1 + random.int(modRevision),
    modRevision,
    version: random.int(4),
    value: Buffer.alloc(random.int(3) === 0 ? 0 : random.int(300), random.int(256)),
    lease: random.int(3) === 0 ? 0n : BigInt(random.int(2 ** 31)) * 2n ** 32n + BigInt(random.int(2 ** 31)),
  };
}

function randomKvs(random: Random): KeyValue[] {
  return Array.from({ length: random.int(4) }, () => randomKv(random));
}

function randomHeader(random: Random): Wire {
  // One member answers with one cluster and member ID; a few pairs cover the remembered bytes.
  const pair = random.int(3);
  return {
    cluster_id: (2n ** 64n - 1n - BigInt(pair)).toString(),
    member_id: BigInt(pair * 7919 + 1).toString(),
    revision: random.int(2) === 0 ? 0 : random.int(2 ** 40),
    // Decimal strings (proto-loader's longs) take the general path.
    raft_term: random.int(4) === 0 ? String(random.int(5)) : random.int(5),
  };
}

function randomOp(random: Random, depth: number): ResponseOp {
  const revision = random.int(100_000);
  switch (random.int(depth < 2 ? 4 : 3)) {
    case 0: return { type: 'range', revision, result: { kvs: randomKvs(random), more: random.int(2) === 0, count: random.int(50) } };
    case 1: return { type: 'put', revision, result: { revision, prevKv: random.int(2) === 0 ? null : randomKv(random) } };
    case 2: {
      const prevKvs = randomKvs(random);
      return { type: 'delete-range', revision, result: { revision, deleted: prevKvs.length, prevKvs } };
    }
    default: return { type: 'txn', result: randomTxn(random, depth + 1) };
  }
}

function randomTxn(random: Random, depth: number): TxnResult {
  const responses = Array.from({ length: random.int(4) }, () => randomOp(random, depth));
  return { revision: random.int(100_000), succeeded: random.int(2) === 0, responses };
}

/** Responses shaped as kv-service.ts builds them. */
function randomResponse(random: Random, method: string): Wire {
  const header = randomHeader(random);
  switch (method) {
    case 'Range': {
      const kvs = randomKvs(random);
      return { header, kvs: kvs.map(encodeKv), more: random.int(2) === 0, count: kvs.length + random.int(3) };
    }
    case 'Put':
      return random.int(2) === 0 ? { header } : { header, prev_kv: encodeKv(randomKv(random)) };
    case 'DeleteRange': {
      const prevKvs = randomKvs(random);
      return { header, deleted: prevKvs.length + random.int(2), prev_kvs: prevKvs.map(encodeKv) };
    }
    default:
      return encodeTxnResult(randomTxn(random, 0), header);
  }
}

const TYPES: Record<string, string> = {
  Range: 'RangeResponse', Put: 'PutResponse', DeleteRange: 'DeleteRangeResponse', Txn: 'TxnResponse',
};

describe('KV response encoder', () => {
  it('encodes Range, Put, DeleteRange and Txn answers as proto-loader does, for random answers', () => {
    const random = seededRandom(1414);
    for (const [method, typeName] of Object.entries(TYPES)) {
      const encode = KV_RESPONSE_ENCODERS[method];
      if (encode === undefined) throw new Error(`no encoder for ${method}`);
      for (let round = 0; round < 400; round++) {
        const response = randomResponse(random, method);
        expect(decoded(typeName, encode(response))).toEqual(decoded(typeName, reference(typeName, response)));
      }
    }
  });

  it('writes an empty header and an empty nested answer as present, as etcd clients expect them', () => {
    const encode = KV_RESPONSE_ENCODERS['Txn'];
    if (encode === undefined) throw new Error('no Txn encoder');
    const bytes = encode({ header: {}, succeeded: false, responses: [{ response_put: { header: {} } }] });
    const type = root.lookupType('etcdserverpb.TxnResponse');
    const message = type.decode(bytes) as unknown as { header: unknown; responses: { response_put: { header: unknown } }[] };
    expect(message.header).not.toBeNull();
    expect(message.responses[0]?.response_put.header).not.toBeNull();
  });
});
