import type { Wire } from './codec.js';
import { ProtoWriter } from '../wire/proto-writer.js';

/**
 * Hand-written protobuf encoders for the KV service's responses (Range, Put, DeleteRange, Txn),
 * from the same Wire objects the handlers return for proto-loader and the JSON gateway. Through
 * proto-loader every answer ran fromObject, which parses the 64-bit IDs of its header from
 * decimal strings into Long objects, before encode: a tenth of a put's CPU time went there and
 * into collecting that garbage. Field numbers are etcd 3.4's (rpc.proto, kv.proto); zero values
 * are left out as Go's encoder leaves them out, and a message field present in the object is
 * written even when empty, as proto-loader writes it.
 */

type Encoder = (response: Wire) => Buffer;

/** A 64-bit integer of a Wire object: a number, a decimal string (longs: String) or a bigint. */
function integer(value: unknown): number | bigint {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'string' && value !== '') return BigInt(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return 0;
}

function isPresent(value: unknown): value is Wire {
  return typeof value === 'object' && value !== null;
}

function list(value: unknown): Wire[] {
  return Array.isArray(value) ? (value as Wire[]) : [];
}

function bytesOf(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return EMPTY;
}

const EMPTY = Buffer.alloc(0);

/** Cluster and member ID fields, remembered for the last pair seen: a member answers with one. */
let lastIds: { clusterId: unknown; memberId: unknown; bytes: Buffer } | null = null;

function idFields(clusterId: unknown, memberId: unknown): Buffer {
  if (lastIds !== null && lastIds.clusterId === clusterId && lastIds.memberId === memberId) return lastIds.bytes;
  const out = new ProtoWriter();
  out.uintField(1, integer(clusterId));
  out.uintField(2, integer(memberId));
  const bytes = out.finish();
  lastIds = { clusterId, memberId, bytes };
  return bytes;
}

/** Bytes of a varint field, 0 when the value is zero (left out). */
function smallFieldBytes(value: number): number {
  if (value === 0) return 0;
  let bytes = 2;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/** Writes a varint field whose tag is one byte, unless the value is zero; returns the end. */
function writeSmallField(to: Buffer, at: number, tag: number, value: number): number {
  if (value === 0) return at;
  let i = at;
  to[i++] = tag;
  let rest = value;
  while (rest >= 0x80) {
    to[i++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  to[i++] = rest;
  return i;
}

const isSmall = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/**
 * The header as one field 1 of its message (every KV answer starts with it). Revision and term
 * are safe integers on every answer the store builds: they take the path that allocates once.
 */
function headerField(header: Wire): Buffer {
  const ids = idFields(header['cluster_id'], header['member_id']);
  const revision = header['revision'] ?? 0;
  const term = header['raft_term'] ?? 0;
  if (!isSmall(revision) || !isSmall(term)) {
    const out = new ProtoWriter();
    out.raw(ids);
    out.uintField(3, integer(revision));
    out.uintField(4, integer(term));
    const bytes = out.finish();
    const field = new ProtoWriter();
    field.messageField(1, bytes);
    return field.finish();
  }
  const length = ids.length + smallFieldBytes(revision) + smallFieldBytes(term);
  // Field 1's length fits one byte: two 64-bit IDs and two safe integers take at most 40.
  const out = Buffer.allocUnsafe(2 + length);
  out[0] = 0x0a;
  out[1] = length;
  ids.copy(out, 2);
  let at = writeSmallField(out, 2 + ids.length, 0x18, revision);
  at = writeSmallField(out, at, 0x20, term);
  return out.subarray(0, at);
}

function keyValueBytes(kv: Wire): Buffer {
  const out = new ProtoWriter();
  out.bytesField(1, bytesOf(kv['key']));
  out.uintField(2, integer(kv['create_revision']));
  out.uintField(3, integer(kv['mod_revision']));
  out.uintField(4, integer(kv['version']));
  out.bytesField(5, bytesOf(kv['value']));
  out.uintField(6, integer(kv['lease']));
  return out.finish();
}

function writeHeader(out: ProtoWriter, response: Wire): void {
  const header = response['header'];
  if (isPresent(header)) out.raw(headerField(header));
}

function writeKvs(out: ProtoWriter, field: number, kvs: unknown): void {
  for (const kv of list(kvs)) out.messageField(field, keyValueBytes(kv));
}

export function encodeRangeResponse(response: Wire): Buffer {
  const out = new ProtoWriter();
  writeHeader(out, response);
  writeKvs(out, 2, response['kvs']);
  out.uintField(3, integer(response['more']));
  out.uintField(4, integer(response['count']));
  return out.finish();
}

export function encodePutResponse(response: Wire): Buffer {
  const header = response['header'];
  const prevKv = response['prev_kv'];
  // The common answer: a header alone.
  if (isPresent(header) && !isPresent(prevKv)) return headerField(header);
  const out = new ProtoWriter();
  writeHeader(out, response);
  if (isPresent(prevKv)) out.messageField(2, keyValueBytes(prevKv));
  return out.finish();
}

export function encodeDeleteRangeResponse(response: Wire): Buffer {
  const out = new ProtoWriter();
  writeHeader(out, response);
  out.uintField(2, integer(response['deleted']));
  writeKvs(out, 3, response['prev_kvs']);
  return out.finish();
}

/** ResponseOp's oneof, by field number. */
const RESPONSE_OPS: readonly (readonly [string, number, Encoder])[] = [
  ['response_range', 1, encodeRangeResponse],
  ['response_put', 2, encodePutResponse],
  ['response_delete_range', 3, encodeDeleteRangeResponse],
  ['response_txn', 4, (response) => encodeTxnResponse(response)],
];

function responseOpBytes(op: Wire): Buffer {
  const out = new ProtoWriter();
  for (const [name, field, encode] of RESPONSE_OPS) {
    const inner = op[name];
    if (isPresent(inner)) {
      out.messageField(field, encode(inner));
      break;
    }
  }
  return out.finish();
}

export function encodeTxnResponse(response: Wire): Buffer {
  const out = new ProtoWriter();
  writeHeader(out, response);
  out.uintField(2, integer(response['succeeded']));
  for (const op of list(response['responses'])) out.messageField(3, responseOpBytes(op));
  return out.finish();
}

/** The KV methods whose responses are encoded here, by method name. */
export const KV_RESPONSE_ENCODERS: Readonly<Record<string, Encoder>> = {
  Range: encodeRangeResponse,
  Put: encodePutResponse,
  DeleteRange: encodeDeleteRangeResponse,
  Txn: encodeTxnResponse,
};
