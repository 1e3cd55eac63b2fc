import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodePutRequest } from '../../store/api/put-request-decoder.js';
import { seededRandom } from '../../shared/random.js';

type Random = ReturnType<typeof seededRandom>;

const protoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'store', 'api', 'proto');
// The options grpc-server.ts loads etcd's protos with.
const definition = loadSync(['rpc.proto'], {
  includeDirs: [protoDir], keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true,
});
const kv = definition['etcdserverpb.KV'] as Record<string, MethodDefinition<object, object>>;
const put = kv['Put'] as MethodDefinition<object, object>;
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target);
root.loadSync('rpc.proto', { keepCase: true });
const PutRequest = root.lookupType('etcdserverpb.PutRequest');

/** What the server's decoder hands the handler: the fast decoder, proto-loader for the rest. */
function outcome(bytes: Buffer): unknown {
  try {
    return { value: decodePutRequest(bytes) ?? put.requestDeserialize(bytes) };
  } catch (err) {
    return { error: String(err) };
  }
}

function reference(bytes: Buffer): unknown {
  try {
    return { value: put.requestDeserialize(bytes) };
  } catch (err) {
    return { error: String(err) };
  }
}

function randomLease(random: Random): string {
  switch (random.int(5)) {
    case 0: return '0';
    case 1: return String(random.int(2 ** 31));
    case 2: return (BigInt(random.int(2 ** 31)) * 2n ** 32n + BigInt(random.int(2 ** 31))).toString();
    case 3: return String(-1 - random.int(1000));
    default: return (2n ** 63n - 1n - BigInt(random.int(1000))).toString();
  }
}

function randomRequest(random: Random): Buffer {
  const message: Record<string, unknown> = {};
  if (random.int(4) !== 0) message['key'] = Buffer.alloc(random.int(40), random.int(256));
  if (random.int(4) !== 0) message['value'] = Buffer.alloc(random.int(3) === 0 ? random.int(2_000) : random.int(300), 7);
  if (random.int(2) === 0) message['lease'] = randomLease(random);
  for (const flag of ['prev_kv', 'ignore_value', 'ignore_lease']) {
    if (random.int(3) === 0) message[flag] = random.int(2) === 0;
  }
  let bytes = Buffer.from(PutRequest.encode(PutRequest.fromObject(message)).finish());
  switch (random.int(8)) {
    case 0: // an unknown varint field
      bytes = Buffer.concat([bytes, Buffer.from([0x78, random.int(128)])]);
      break;
    case 1: // a known field repeated: the last one wins
      bytes = Buffer.concat([bytes, Buffer.from([0x0a, 0x02, 0x61, 0x62, 0x20, 0x01])]);
      break;
    case 2: // cut short
      bytes = bytes.subarray(0, random.int(bytes.length + 1));
      break;
    case 3: // a bool written as a multi-byte varint
      bytes = Buffer.concat([bytes, Buffer.from([0x28, 0x80, 0x01])]);
      break;
    default:
      break;
  }
  return bytes;
}

describe('PutRequest decoder', () => {
  it('gives what proto-loader gives (value or error), for random and damaged requests', () => {
    const random = seededRandom(2718);
    for (let round = 0; round < 1500; round++) {
      const bytes = randomRequest(random);
      expect(outcome(bytes)).toEqual(reference(bytes));
    }
  });

  it('decodes the plain requests of clients itself', () => {
    const bytes = Buffer.from(PutRequest.encode(PutRequest.fromObject({ key: Buffer.from('k'), value: Buffer.from('v'), lease: '7' })).finish());
    expect(decodePutRequest(bytes)).toEqual({
      key: Buffer.from('k'), value: Buffer.from('v'), lease: '7', prev_kv: false, ignore_value: false, ignore_lease: false,
    });
  });
});
