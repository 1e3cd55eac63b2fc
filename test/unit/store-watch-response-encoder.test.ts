import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { encodeEvent, type Wire } from '../../store/api/codec.js';
import { eventResponse, eventResponseParts, watchResponseSerializer } from '../../store/api/watch-response-encoder.js';
import type { KeyValue, MvccEvent } from '../../store/mvcc/types.js';
import { seededRandom } from '../../shared/random.js';

const protoDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'store', 'api', 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target);
root.loadSync('rpc.proto', { keepCase: true });
const WatchResponse = root.lookupType('etcdserverpb.WatchResponse');
const toObject = (bytes: Buffer) => WatchResponse.toObject(WatchResponse.decode(bytes), { longs: String, bytes: String, defaults: true });
/** What proto-loader would put on the wire (explicit zeros included: decoded with defaults, equal). */
const reference = (wire: Wire): Buffer => Buffer.from(WatchResponse.encode(WatchResponse.fromObject(wire)).finish());

const fast = watchResponseSerializer(() => { throw new Error('fallback used for an event response'); });

function randomKv(random: ReturnType<typeof seededRandom>, modRevision: number): KeyValue {
  const size = (max: number) => random.int(max);
  return {
    key: Buffer.from(Array.from({ length: 1 + size(80) }, () => random.int(256))),
    createRevision: 1 + random.int(modRevision),
    modRevision,
    version: 1 + random.int(5),
    value: Buffer.alloc(size(3) === 0 ? 0 : size(400), random.int(256)),
    lease: random.int(3) === 0 ? 0n : BigInt(random.int(2 ** 31)) * 2n ** 32n + BigInt(random.int(2 ** 31)),
  };
}

describe('watch response encoder', () => {
  it('encodes event responses as proto-loader would, for random events', () => {
    const random = seededRandom(4242);
    for (let round = 0; round < 300; round++) {
      const events: MvccEvent[] = Array.from({ length: 1 + random.int(6) }, (_, i) => {
        const kv = randomKv(random, 10 + round * 10 + i);
        const type = random.int(3) === 0 ? 'delete' : 'put';
        const prevKv = random.int(2) === 0 ? null : randomKv(random, kv.modRevision - 1);
        return { type, kv: type === 'delete' ? { ...kv, createRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n } : kv, prevKv };
      });
      const header = {
        cluster_id: (2n ** 64n - 1n - BigInt(round)).toString(),
        member_id: BigInt(random.int(2 ** 31) + 1).toString(),
        revision: 1_000 + round,
        raft_term: random.int(4),
      };
      // etcd takes any client-chosen ID but -1, negative ones included.
      const watchId = random.int(3) === 0 ? 0 : random.int(6) === 0 ? -2 - random.int(100) : random.int(100_000);
      const fragment = random.int(4) === 0;
      const expected = { header, watch_id: watchId, events: events.map(encodeEvent), ...(fragment ? { fragment } : {}) };
      const bytes = fast(eventResponse(header, watchId, events, fragment));
      expect(toObject(bytes)).toEqual(toObject(reference(expected)));
      // The parts our gRPC server writes one after the other are the same bytes.
      const parts = eventResponseParts(header, watchId, [events], fragment);
      if (watchId >= 0) expect(Buffer.concat(parts ?? []).equals(bytes)).toBe(true);
      else expect(parts).toBeNull();
      // A held watcher's batches joined into one response: the same bytes as their events in one.
      if (watchId >= 0 && events.length > 1) {
        const cut = 1 + random.int(events.length - 1);
        const joined = eventResponseParts(header, watchId, [events.slice(0, cut), events.slice(cut)], fragment);
        expect(Buffer.concat(joined ?? []).equals(bytes)).toBe(true);
      }
      // Encoding the same events again (cached KeyValue bytes) gives the same result.
      expect(fast(eventResponse(header, watchId, events, fragment)).equals(bytes)).toBe(true);
      // Another watcher of the same events array (as the hub shares it), with its own ID and a
      // later header: its own response, not the first one's.
      const later = { ...header, revision: header.revision + 1 };
      const other = fast(eventResponse(later, watchId + 7, events));
      const otherExpected = { header: later, watch_id: watchId + 7, events: events.map(encodeEvent) };
      expect(toObject(other)).toEqual(toObject(reference(otherExpected)));
    }
  });

  it('leaves responses without events to the method serializer', () => {
    const seen: unknown[] = [];
    const serializer = watchResponseSerializer((value) => { seen.push(value); return Buffer.from([1]); });
    const created = { header: {}, watch_id: 3, created: true };
    expect(serializer(created)).toEqual(Buffer.from([1]));
    expect(seen).toEqual([created]);
  });
});
