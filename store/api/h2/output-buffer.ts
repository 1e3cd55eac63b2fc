import { FRAME, FRAME_HEADER_BYTES, writeFrameHeader } from './h2-protocol.js';

/**
 * Bytes of a slab that frames are written into: between these, four times what the last turn
 * wrote, so a connection that answers a request now and then holds a few KiB, not 64.
 */
const SLAB_BYTES_MIN = 4 * 1024;
const SLAB_BYTES_MAX = 64 * 1024;
/** Payloads from this size on go out as they are, not copied into a slab. */
const COPY_BYTES_MAX = 16 * 1024;

/**
 * A connection's output until the next socket write: frames are written straight into a slab
 * (no buffer per frame header, one copy of each small payload), large payloads are kept as they
 * are. take() hands over what was written; the slab's unwritten rest serves the next turn.
 */
export class OutputBuffer {
  /** Allocated at the first write: a connection that never writes holds none. */
  private slab = Buffer.alloc(0);
  private slabBytes = SLAB_BYTES_MIN;
  /** Bytes written since the last take(), to size the next slab. */
  private writtenBytes = 0;
  /** Where the current run of written bytes starts in the slab, and where it ends. */
  private start = 0;
  private end = 0;
  private pieces: Buffer[] = [];
  /**
   * The last frame written since the last take(), while it is a DATA frame without flags: the next
   * message of its stream joins its payload rather than opening a frame (its header's length is
   * updated in place, in whichever slab holds it). A client handles each DATA frame as a unit
   * (grpc-go hands each to the stream's reader), so a batch of small responses on one stream, such
   * as a fan-out's watch events, costs it one frame, not one per message.
   */
  private openData: { slab: Buffer; streamId: number; at: number; payloadBytes: number } | null = null;

  get isEmpty(): boolean {
    return this.end === this.start && this.pieces.length === 0;
  }

  /** A whole frame: header and payload. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.openData = null;
    if (payload.length >= COPY_BYTES_MAX) {
      const at = this.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(this.slab, at, payload.length, type, flags, streamId);
      this.append(payload);
      return;
    }
    const at = this.reserve(FRAME_HEADER_BYTES + payload.length);
    writeFrameHeader(this.slab, at, payload.length, type, flags, streamId);
    this.slab.set(payload, at + FRAME_HEADER_BYTES);
  }

  /** A frame whose payload is a 4-byte big-endian value (WINDOW_UPDATE, RST_STREAM). */
  frameWithWord(type: number, streamId: number, word: number): void {
    this.openData = null;
    const at = this.reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.slab, at, 4, type, 0, streamId);
    this.slab.writeUInt32BE(word, at + FRAME_HEADER_BYTES);
  }

  /**
   * A DATA frame whose payload is a 5-byte gRPC message prefix (not compressed, the length) and
   * the message: the prefix is written in place rather than put in front of a copy.
   */
  lengthPrefixedFrame(type: number, flags: number, streamId: number, message: Buffer, maxPayload: number): void {
    const payloadBytes = 5 + message.length;
    if (message.length >= COPY_BYTES_MAX) {
      const at = this.reserve(FRAME_HEADER_BYTES + 5);
      writeFrameHeader(this.slab, at, payloadBytes, type, flags, streamId);
      this.writePrefix(at + FRAME_HEADER_BYTES, message.length);
      this.append(message);
      return;
    }
    const at = this.dataStart(type, flags, streamId, payloadBytes, maxPayload);
    this.writePrefix(at, message.length);
    this.slab.set(message, at + 5);
  }

  /** As lengthPrefixedFrame, for a message given as parts (`bytes` long in all), always copied. */
  lengthPrefixedParts(type: number, flags: number, streamId: number, parts: readonly Buffer[], bytes: number, maxPayload: number): void {
    let at = this.dataStart(type, flags, streamId, 5 + bytes, maxPayload);
    this.writePrefix(at, bytes);
    at += 5;
    for (const part of parts) {
      this.slab.set(part, at);
      at += part.length;
    }
  }

  /**
   * Room for `payloadBytes` of a frame's payload, at the returned offset: in the open DATA frame of
   * the same stream when they fit it (within `maxPayload`, the client's frame size), else after a
   * new frame header.
   */
  private dataStart(type: number, flags: number, streamId: number, payloadBytes: number, maxPayload: number): number {
    const open = this.openData;
    if (open !== null && open.streamId === streamId && type === FRAME.data && flags === 0
      && open.payloadBytes + payloadBytes <= maxPayload) {
      open.payloadBytes += payloadBytes;
      open.slab.writeUIntBE(open.payloadBytes, open.at, 3);
      return this.reserve(payloadBytes);
    }
    const header = this.reserve(FRAME_HEADER_BYTES + payloadBytes);
    writeFrameHeader(this.slab, header, payloadBytes, type, flags, streamId);
    this.openData = type === FRAME.data && flags === 0 ? { slab: this.slab, streamId, at: header, payloadBytes } : null;
    return header + FRAME_HEADER_BYTES;
  }

  /** Bytes that are already frames (or part of one: a large payload after its header). */
  append(bytes: Buffer): void {
    this.openData = null;
    if (bytes.length < COPY_BYTES_MAX) {
      const at = this.reserve(bytes.length); // first: it may replace the slab
      this.slab.set(bytes, at);
      return;
    }
    this.closeRun();
    this.pieces.push(bytes);
  }

  /** Everything written since the last take, in order. */
  take(): Buffer[] {
    this.closeRun();
    this.openData = null;
    const pieces = this.pieces;
    this.pieces = [];
    this.slabBytes = Math.min(SLAB_BYTES_MAX, Math.max(SLAB_BYTES_MIN, 4 * this.writtenBytes));
    this.writtenBytes = 0;
    return pieces;
  }

  private writePrefix(at: number, length: number): void {
    this.slab[at] = 0;
    this.slab.writeUInt32BE(length, at + 1);
  }

  /** Room for `bytes` in the slab, at the returned offset. */
  private reserve(bytes: number): number {
    if (this.end + bytes > this.slab.length) {
      this.closeRun();
      this.slab = Buffer.allocUnsafe(Math.max(this.slabBytes, bytes));
      this.start = 0;
      this.end = 0;
    }
    const at = this.end;
    this.end += bytes;
    this.writtenBytes += bytes;
    return at;
  }

  /** The bytes written in the slab since the last run become a piece (the socket will own it). */
  private closeRun(): void {
    if (this.end === this.start) return;
    this.pieces.push(this.slab.subarray(this.start, this.end));
    this.start = this.end;
  }
}
