import { deserialize, serialize } from 'node:v8';
import type { EntryType, Message, MessageType, Snapshot } from '../raft/types.js';
import type { PeerFrame } from './peer-codec.js';

/**
 * Raft frames between members in a fixed binary layout: the V8 serializer they used before cost
 * a leader 4% of its time in a one-client write (every append, acknowledgement and commit goes
 * through it twice). Numbers are doubles (terms and indexes are safe integers), IDs 64-bit,
 * byte strings length-prefixed; the rare snapshot message keeps its snapshot in V8's format.
 * The first byte tells the formats apart: V8's output always starts with 0xFF.
 */
export const RAFT_FRAME_MAGIC = 0xe1;

const MESSAGE_TYPES: readonly MessageType[] = [
  'hup', 'beat', 'prop', 'app', 'app-resp', 'vote', 'vote-resp', 'pre-vote', 'pre-vote-resp', 'snap',
  'heartbeat', 'heartbeat-resp', 'unreachable', 'snap-status', 'check-quorum', 'transfer-leader',
  'timeout-now', 'read-index', 'read-index-resp',
];
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'conf-change'];
const MESSAGE_TYPE_CODES = new Map(MESSAGE_TYPES.map((type, i) => [type, i]));

export class RaftFrameError extends Error {
  override readonly name = 'RaftFrameError';
}

/** Fixed bytes of a message before its context, entries and snapshot. */
const MESSAGE_FIXED_BYTES = 1 + 8 + 8 + 5 * 8 + 1 + 4 + 4 + 1;
const ENTRY_FIXED_BYTES = 8 + 8 + 1 + 4;

/**
 * Member and cluster IDs, encoded and decoded: a cluster has a handful, and Node's 64-bit BigInt
 * reads and writes allocate several BigInts each, five times per frame, a steady share of what
 * the scavenger collects on a busy member. Bounded, so that a peer sending made-up IDs costs no
 * more than a cleared cache.
 */
const ID_CACHE_MAX = 64;
const idBytes = new Map<bigint, Buffer>();
const idValues = new Map<number, Map<number, bigint>>();
const NO_BYTES = new Uint8Array(0);

function writeId(out: Buffer, id: bigint, at: number): number {
  let bytes = idBytes.get(id);
  if (bytes === undefined) {
    if (idBytes.size >= ID_CACHE_MAX) idBytes.clear();
    bytes = Buffer.allocUnsafe(8);
    bytes.writeBigUInt64BE(id);
    idBytes.set(id, bytes);
  }
  out.set(bytes, at);
  return at + 8;
}

function readId(data: Buffer, at: number): bigint {
  const high = data.readUInt32BE(at);
  const low = data.readUInt32BE(at + 4);
  let lows = idValues.get(high);
  let id = lows?.get(low);
  if (id !== undefined) return id;
  if (lows === undefined || lows.size >= ID_CACHE_MAX) {
    if (idValues.size >= ID_CACHE_MAX) idValues.clear();
    lows = new Map();
    idValues.set(high, lows);
  }
  id = data.readBigUInt64BE(at);
  lows.set(low, id);
  return id;
}

export function encodeRaftFrame(frame: PeerFrame): Buffer {
  const snapshots = frame.messages.map((m) => (m.snapshot === null || m.snapshot === undefined ? null : serialize(m.snapshot)));
  let size = 1 + 8 * 3 + 4;
  frame.messages.forEach((m, i) => {
    size += MESSAGE_FIXED_BYTES + m.context.length + (snapshots[i] === null ? 0 : 4 + (snapshots[i] as Buffer).length);
    for (const entry of m.entries) size += ENTRY_FIXED_BYTES + entry.data.length;
  });
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = RAFT_FRAME_MAGIC;
  at = writeId(out, frame.clusterId, at);
  at = writeId(out, frame.from, at);
  at = writeId(out, frame.to, at);
  at = out.writeUInt32BE(frame.messages.length, at);
  frame.messages.forEach((m, i) => {
    const code = MESSAGE_TYPE_CODES.get(m.type);
    if (code === undefined) throw new RaftFrameError(`unknown message type ${m.type}`);
    out[at++] = code;
    at = writeId(out, m.to, at);
    at = writeId(out, m.from, at);
    at = out.writeDoubleBE(m.term, at);
    at = out.writeDoubleBE(m.logTerm, at);
    at = out.writeDoubleBE(m.index, at);
    at = out.writeDoubleBE(m.commit, at);
    at = out.writeDoubleBE(m.rejectHint, at);
    out[at++] = m.reject ? 1 : 0;
    at = out.writeUInt32BE(m.context.length, at);
    out.set(m.context, at);
    at += m.context.length;
    at = out.writeUInt32BE(m.entries.length, at);
    for (const entry of m.entries) {
      at = out.writeDoubleBE(entry.term, at);
      at = out.writeDoubleBE(entry.index, at);
      out[at++] = entry.type === 'normal' ? 0 : 1;
      at = out.writeUInt32BE(entry.data.length, at);
      out.set(entry.data, at);
      at += entry.data.length;
    }
    const snapshot = snapshots[i] ?? null;
    out[at++] = snapshot === null ? 0 : 1;
    if (snapshot !== null) {
      at = out.writeUInt32BE(snapshot.length, at);
      out.set(snapshot, at);
      at += snapshot.length;
    }
  });
  return out;
}

/** Reads what encodeRaftFrame wrote; byte strings are copies (the input buffer is not kept). */
export function decodeRaftFrame(data: Buffer): PeerFrame {
  let at = 0;
  const need = (bytes: number): void => {
    if (at + bytes > data.length) throw new RaftFrameError('truncated raft frame');
  };
  const bytesOf = (length: number): Uint8Array => {
    if (length === 0) return NO_BYTES; // most contexts: one shared empty array, nothing to copy
    need(length);
    const copy = new Uint8Array(length);
    copy.set(data.subarray(at, at + length));
    at += length;
    return copy;
  };
  need(1 + 8 * 3 + 4);
  if (data[at++] !== RAFT_FRAME_MAGIC) throw new RaftFrameError('not a raft frame');
  const clusterId = readId(data, at);
  const from = readId(data, at + 8);
  const to = readId(data, at + 16);
  const count = data.readUInt32BE(at + 24);
  at += 28;
  const messages: Message[] = [];
  for (let i = 0; i < count; i++) {
    need(MESSAGE_FIXED_BYTES - 4 - 1);
    const type = MESSAGE_TYPES[data[at] as number];
    if (type === undefined) throw new RaftFrameError(`unknown message type code ${data[at]}`);
    const messageTo = readId(data, at + 1);
    const messageFrom = readId(data, at + 9);
    const term = data.readDoubleBE(at + 17);
    const logTerm = data.readDoubleBE(at + 25);
    const index = data.readDoubleBE(at + 33);
    const commit = data.readDoubleBE(at + 41);
    const rejectHint = data.readDoubleBE(at + 49);
    const reject = data[at + 57] === 1;
    const contextLength = data.readUInt32BE(at + 58);
    at += 62;
    const context = bytesOf(contextLength);
    need(4);
    const entryCount = data.readUInt32BE(at);
    at += 4;
    const entries = [];
    for (let e = 0; e < entryCount; e++) {
      need(ENTRY_FIXED_BYTES);
      const entryTerm = data.readDoubleBE(at);
      const entryIndex = data.readDoubleBE(at + 8);
      const entryType = ENTRY_TYPES[data[at + 16] as number];
      if (entryType === undefined) throw new RaftFrameError(`unknown entry type code ${data[at + 16]}`);
      const length = data.readUInt32BE(at + 17);
      at += ENTRY_FIXED_BYTES;
      entries.push({ term: entryTerm, index: entryIndex, type: entryType, data: bytesOf(length) });
    }
    need(1);
    let snapshot: Snapshot | null = null;
    if (data[at++] === 1) {
      need(4);
      const length = data.readUInt32BE(at);
      at += 4;
      need(length);
      snapshot = deserialize(data.subarray(at, at + length)) as Snapshot;
      at += length;
    }
    messages.push({ type, to: messageTo, from: messageFrom, term, logTerm, index, entries, commit, snapshot, reject, rejectHint, context });
  }
  if (at !== data.length) throw new RaftFrameError('trailing bytes after a raft frame');
  return { clusterId, from, to, messages };
}
