import type { KeyValue, MvccEvent } from '../mvcc/types.js';
import type { Wire } from './codec.js';
import { ProtoWriter } from '../wire/proto-writer.js';

/**
 * A hand-written protobuf encoder for event-carrying WatchResponses. A put seen by 1,000 watchers
 * went through proto-loader's fromObject and encode 1,000 times; here a KeyValue's bytes are
 * encoded once, cached on the object every watcher's event shares, and each response is its
 * header, its watch ID and those cached bytes; the events of a response that many watchers share
 * (the watch hub hands one array to every watcher of a range) are joined once for all of them.
 * Field numbers are etcd 3.4's (rpc.proto,
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

/** ResponseHeader field bytes by header object: a fan-out hands one header to every watcher. */
const headerFields = new WeakMap<Wire, Buffer>();

/** Field 1 of WatchResponse. */
function headerField(header: Wire): Buffer {
  const cached = headerFields.get(header);
  if (cached !== undefined) return cached;
  const inner = new ProtoWriter();
  inner.uintField(1, BigInt(String(header['cluster_id'] ?? '0')));
  inner.uintField(2, BigInt(String(header['member_id'] ?? '0')));
  inner.uintField(3, Number(header['revision'] ?? 0));
  inner.uintField(4, Number(header['raft_term'] ?? 0));
  const out = new ProtoWriter();
  out.messageField(1, inner.finish());
  const bytes = out.finish();
  headerFields.set(header, bytes);
  return bytes;
}

/**
 * Fields 11 of a response, by events array. Arrays handed to eventResponse are never changed
 * afterwards (the hub builds each one before handing it out), so the bytes stay right.
 */
const eventsFields = new WeakMap<readonly MvccEvent[], Buffer>();

function eventsField(events: readonly MvccEvent[]): Buffer {
  const cached = eventsFields.get(events);
  if (cached !== undefined) return cached;
  const bytes = events.length === 1 ? eventField(events[0] as MvccEvent) : Buffer.concat(events.map(eventField));
  eventsFields.set(events, bytes);
  return bytes;
}

/** Bytes of a varint of a non-negative safe integer. */
function varintSize(value: number): number {
  let size = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

/** Field 7 (fragment) set. */
const FRAGMENT_FIELD = Buffer.from([(7 << 3) | 0, 1]);
const NO_BYTES = Buffer.alloc(0);
/** Field 2 (watch_id) bytes of the IDs a stream hands out first (0, 1, 2, ...), made once. */
const watchIdFields: Buffer[] = [];
const WATCH_ID_FIELDS_CACHED = 4096;

function watchIdField(watchId: number): Buffer {
  if (watchId === 0) return NO_BYTES;
  const cached = watchIdFields[watchId];
  if (cached !== undefined) return cached;
  const out = Buffer.allocUnsafe(1 + varintSize(watchId));
  out[0] = (2 << 3) | 0; // watch_id, varint
  let at = 1;
  for (let rest = watchId; ; rest = Math.floor(rest / 0x80)) {
    if (rest < 0x80) {
      out[at++] = rest;
      break;
    }
    out[at++] = (rest % 0x80) | 0x80;
  }
  if (watchId < WATCH_ID_FIELDS_CACHED) watchIdFields[watchId] = out;
  return out;
}

/**
 * An event response as the parts of its encoding, in field order: the header, the watch ID, the
 * fragment flag, the events of each batch (events is a repeated field: entries written one after
 * the other are the whole list). Written one after the other they are the response; the header
 * and each batch's events bytes are shared by every watcher they go to. Null for an ID the parts
 * do not cover (negative ones, which proto3 encodes in ten bytes).
 */
export function eventResponseParts(header: Wire, watchId: number, batches: readonly (readonly MvccEvent[])[], fragment = false): Buffer[] | null {
  if (watchId < 0 || !Number.isSafeInteger(watchId)) return null;
  const parts = [headerField(header), watchIdField(watchId)];
  if (fragment) parts.push(FRAGMENT_FIELD);
  for (const events of batches) parts.push(eventsField(events));
  return parts;
}

/** The whole encoding of an event response. */
function encodeEventResponse(response: EventResponse, events: readonly MvccEvent[]): Buffer {
  const watchId = Number(response['watch_id'] ?? 0);
  const isFragment = response['fragment'] === true;
  const parts = eventResponseParts(response['header'] as Wire, watchId, [events], isFragment);
  if (parts !== null) return Buffer.concat(parts);
  const out = new ProtoWriter();
  out.raw(headerField(response['header'] as Wire));
  out.uintField(2, watchId);
  if (isFragment) out.uintField(7, 1);
  out.raw(eventsField(events));
  return out.finish();
}
