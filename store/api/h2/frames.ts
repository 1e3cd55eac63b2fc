/**
 * HTTP/2 framing (RFC 9113 §4) as whole frames: the client preface, a frame reader, header blocks
 * as HEADERS + CONTINUATION frames. The connections read frames through frame-input.ts; the reader
 * here serves tests that speak HTTP/2 frame by frame, and headerBlockFrames our client's requests.
 */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const FRAME_HEADER_BYTES = 9;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may set, and the default: frames we write stay within it. */
export const FRAME_PAYLOAD_BYTES_MAX = 16_384;

export const FRAME_TYPE = { headers: 0x1, settings: 0x4, continuation: 0x9 } as const;
export const FLAG = { ack: 0x1, endStream: 0x1, endHeaders: 0x4, padded: 0x8, priority: 0x20 } as const;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
  /** The frame as received, header included. */
  readonly raw: Buffer;
}

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** Cuts a byte stream into whole frames; a frame split across chunks waits for its rest. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly payloadBytesMax = 1 << 24) {}

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    let at = 0;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUIntBE(at, 3);
      if (length > this.payloadBytesMax) throw new FrameError(`frame of ${length} bytes`);
      const end = at + FRAME_HEADER_BYTES + length;
      if (this.pending.length < end) break;
      const raw = this.pending.subarray(at, end);
      frames.push({
        type: raw[3] as number, flags: raw[4] as number, streamId: raw.readUInt32BE(5) & 0x7fff_ffff,
        payload: raw.subarray(FRAME_HEADER_BYTES), raw,
      });
      at = end;
    }
    this.pending = this.pending.subarray(at);
    return frames;
  }

  /** Bytes of a frame not complete yet (handed on with the socket). */
  rest(): Buffer {
    return this.pending;
  }
}

export function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fff_ffff, 5);
  return Buffer.concat([header, payload]);
}

/** The header block fragment of a HEADERS frame (padding and priority removed) and its priority bytes. */
export function headersFragment(frame: Frame): { fragment: Buffer; priority: Buffer | null } {
  let start = 0;
  let end = frame.payload.length;
  if ((frame.flags & FLAG.padded) !== 0) {
    const padding = frame.payload[0] ?? 0;
    start = 1;
    end -= padding;
  }
  let priority: Buffer | null = null;
  if ((frame.flags & FLAG.priority) !== 0) {
    priority = frame.payload.subarray(start, start + 5);
    start += 5;
  }
  if (end < start) throw new FrameError('HEADERS padding longer than the frame');
  return { fragment: frame.payload.subarray(start, end), priority };
}

/** A header block as HEADERS (+ CONTINUATION) frames, each within the default frame size. */
export function headerBlockFrames(streamId: number, block: Buffer, endStream: boolean, priority: Buffer | null): Buffer[] {
  const frames: Buffer[] = [];
  const firstRoom = FRAME_PAYLOAD_BYTES_MAX - (priority === null ? 0 : priority.length);
  let at = Math.min(block.length, firstRoom);
  const isLast = at === block.length;
  const flags = (endStream ? FLAG.endStream : 0) | (priority === null ? 0 : FLAG.priority) | (isLast ? FLAG.endHeaders : 0);
  frames.push(encodeFrame(FRAME_TYPE.headers, flags, streamId, priority === null ? block.subarray(0, at) : Buffer.concat([priority, block.subarray(0, at)])));
  while (at < block.length) {
    const next = Math.min(block.length, at + FRAME_PAYLOAD_BYTES_MAX);
    frames.push(encodeFrame(FRAME_TYPE.continuation, next === block.length ? FLAG.endHeaders : 0, streamId, block.subarray(at, next)));
    at = next;
  }
  return frames;
}
