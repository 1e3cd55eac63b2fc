import type { KeyValue, MvccEvent } from '../mvcc/types.js';
import type { Wire } from './codec.js';
import { ProtoWriter } from '../wire/proto-writer.js';

/**
 * A hand-written protobuf encoder for event-carrying WatchResponses. A put seen by 1,000 watchers
 * went through proto-loader's fromObject and encode 1,000 times; here a KeyValue's bytes are
 * encoded once, cached on the object every watcher's event shares, and each response is its
 * header, its watch ID and those cached bytes. Field numbers are etcd 3.4's (rpc.proto,
 * kv.proto); zero values are left out, as proto3 encoders do. Responses without events
 * (created, canceled, progress) keep going through proto-loader.
 */

/** The internal events of a response built by eventResponse, for the serializer. */
const EVENTS = Symbol('watch response events');

type EventResponse = Wire & { [EVENTS]: readonly MvccEvent[] };

export function eventResponse(header: Wire, watchId: number, events: readonly MvccEvent[], fragment = false): Wire {
  const response: EventResponse = { header, watch_id: watchId, [EVENTS]: events };
  if (fragment) response['fragment'] = true;
  return response;
}

/** Wraps the method's serializer: event responses take the fast path, anything else the old one. */
export function watchResponseSerializer(fallback: (value: unknown) => Buffer): (value: unknown) => Buffer {
  return (value: unknown): Buffer => {
    const events = (value as Partial<EventResponse>)[EVENTS];
    return events === undefined ? fallback(value) : encodeEventResponse(value as EventResponse, events);
  };
}

/** Encoded KeyValues, by object: every watcher's copy of an event shares the store's KeyValue. */
const putKvBytes = new WeakMap<KeyValue, Buffer>();
const deleteKvBytes = new WeakMap<KeyValue, Buffer>();
/** Whole Event field bytes (tag, length, Event) for events without prev_kv, the common case. */
const putEventField = new WeakMap<KeyValue, Buffer>();
const deleteEventField = new WeakMap<KeyValue, Buffer>();

function keyValueBytes(kv: KeyValue, isDelete: boolean): Buffer {
  const cache = isDelete ? deleteKvBytes : putKvBytes;
  const cached = cache.get(kv);
  if (cached !== undefined) return cached;
  const out = new ProtoWriter();
  out.bytesField(1, kv.key);
  if (isDelete) {
    // A delete event's kv carries only the key and the deletion's revision, as etcd's.
    out.uintField(3, kv.modRevision);
  } else {
    out.uintField(2, kv.createRevision);
    out.uintField(3, kv.modRevision);
    out.uintField(4, kv.version);
    out.bytesField(5, kv.value);
    out.uintField(6, kv.lease);
  }
  const bytes = out.finish();
  cache.set(kv, bytes);
  return bytes;
}

function eventBytes(event: MvccEvent): Buffer {
  const isDelete = event.type === 'delete';
  const out = new ProtoWriter();
  out.uintField(1, isDelete ? 1 : 0);
  out.messageField(2, keyValueBytes(event.kv, isDelete));
  if (event.prevKv !== null) out.messageField(3, keyValueBytes(event.prevKv, false));
  return out.finish();
}

/** Field 11 of WatchResponse for one event. */
function eventField(event: MvccEvent): Buffer {
  const isCacheable = event.prevKv === null;
  const cache = event.type === 'delete' ? deleteEventField : putEventField;
  if (isCacheable) {
    const cached = cache.get(event.kv);
    if (cached !== undefined) return cached;
  }
  const out = new ProtoWriter();
  out.messageField(11, eventBytes(event));
  const bytes = out.finish();
  if (isCacheable) cache.set(event.kv, bytes);
  return bytes;
}

/** ResponseHeader bytes, remembered for the last header seen: a fan-out repeats one header. */
let lastHeader: { key: string; bytes: Buffer } | null = null;

function headerBytes(header: Wire): Buffer {
  const clusterId = String(header['cluster_id'] ?? '0');
  const memberId = String(header['member_id'] ?? '0');
  const revision = Number(header['revision'] ?? 0);
  const raftTerm = Number(header['raft_term'] ?? 0);
  const key = `${clusterId}/${memberId}/${revision}/${raftTerm}`;
  if (lastHeader !== null && lastHeader.key === key) return lastHeader.bytes;
  const out = new ProtoWriter();
  out.uintField(1, BigInt(clusterId));
  out.uintField(2, BigInt(memberId));
  out.uintField(3, revision);
  out.uintField(4, raftTerm);
  const bytes = out.finish();
  lastHeader = { key, bytes };
  return bytes;
}

function encodeEventResponse(response: EventResponse, events: readonly MvccEvent[]): Buffer {
  const out = new ProtoWriter();
  out.messageField(1, headerBytes(response['header'] as Wire));
  out.uintField(2, Number(response['watch_id'] ?? 0));
  if (response['fragment'] === true) out.uintField(7, 1);
  for (const event of events) out.raw(eventField(event));
  return out.finish();
}
