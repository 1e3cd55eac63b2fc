import { HpackDecoder, HpackError, type HeaderList } from './hpack.js';
import {
  DEFAULT_FRAME_PAYLOAD_BYTES, ERROR_CODE, FLAGS, FRAME, FRAME_HEADER_BYTES, H2ConnectionError, SETTING, WINDOW_BYTES_MAX,
} from './h2-protocol.js';

/**
 * Reading frames, the part both ends of a connection share (RFC 9113 §4-6): cutting bytes into
 * frames, stripping padding and priority, header blocks over CONTINUATION, and the checks on
 * SETTINGS, PING and WINDOW_UPDATE payloads. What a frame then does differs by side.
 */

/** A header block spread over HEADERS and CONTINUATION frames beyond this ends the connection. */
const HEADER_BLOCK_BYTES_MAX = 16 << 20;

/**
 * Calls `onFrame` for each whole frame at the start of `bytes` while `isOpen()`; returns where
 * the unread rest begins (a frame not complete yet waits for more bytes).
 */
export function readFrames(
  bytes: Buffer, isOpen: () => boolean, onFrame: (type: number, flags: number, streamId: number, payload: Buffer) => void,
): number {
  let at = 0;
  while (bytes.length - at >= FRAME_HEADER_BYTES && isOpen()) {
    const length = ((bytes[at] as number) << 16) | ((bytes[at + 1] as number) << 8) | (bytes[at + 2] as number);
    // We never announce a larger SETTINGS_MAX_FRAME_SIZE than the default.
    if (length > DEFAULT_FRAME_PAYLOAD_BYTES) throw new H2ConnectionError(ERROR_CODE.frameSize, `frame of ${length} bytes`);
    const end = at + FRAME_HEADER_BYTES + length;
    if (end > bytes.length) break;
    const streamId = bytes.readUInt32BE(at + 5) & 0x7fff_ffff;
    onFrame(bytes[at + 3] as number, bytes[at + 4] as number, streamId, bytes.subarray(at + FRAME_HEADER_BYTES, end));
    at = end;
  }
  return at;
}

/** A DATA frame's content, its padding removed. */
export function dataContent(flags: number, payload: Buffer): Buffer {
  if ((flags & FLAGS.padded) === 0) return payload;
  const padding = payload[0] ?? 0;
  if (padding >= payload.length) throw new H2ConnectionError(ERROR_CODE.protocol, 'DATA padding past the frame');
  return payload.subarray(1, payload.length - padding);
}

/** A whole header block, decoded, and whether its stream ends with it. */
export interface HeaderBlock {
  readonly streamId: number;
  readonly headers: HeaderList;
  readonly endStream: boolean;
}

/**
 * Puts a header block together from a HEADERS frame and the CONTINUATION frames after it, and
 * decodes it (every block, whatever became of its stream: the HPACK table must stay in step).
 */
export class HeaderBlockReader {
  private open: { streamId: number; endStream: boolean; fragments: Buffer[]; bytes: number } | null = null;
  private readonly decoder = new HpackDecoder(4096, 4096);

  /** A HEADERS or CONTINUATION frame: the decoded block if it ends here, else null. */
  read(type: number, flags: number, streamId: number, payload: Buffer): HeaderBlock | null {
    const whole = type === FRAME.headers ? this.headers(flags, streamId, payload) : this.continuation(flags, streamId, payload);
    if (whole === null) return null;
    try {
      return { streamId: whole.streamId, headers: this.decoder.decode(whole.block), endStream: whole.endStream };
    } catch (err) {
      if (err instanceof HpackError) throw new H2ConnectionError(ERROR_CODE.compression, err.message);
      throw err;
    }
  }

  /** Nothing but the block's CONTINUATION may come between its HEADERS and its end. */
  checkOrder(type: number, streamId: number): void {
    if (this.open !== null && (type !== FRAME.continuation || streamId !== this.open.streamId)) {
      throw new H2ConnectionError(ERROR_CODE.protocol, 'a header block was interrupted');
    }
  }

  private headers(flags: number, streamId: number, payload: Buffer): RawBlock | null {
    let start = 0;
    let end = payload.length;
    if ((flags & FLAGS.padded) !== 0) {
      start = 1;
      end -= payload[0] ?? 0;
    }
    if ((flags & FLAGS.priority) !== 0) start += 5;
    if (end < start) throw new H2ConnectionError(ERROR_CODE.protocol, 'HEADERS padding past the frame');
    const fragment = payload.subarray(start, end);
    const endStream = (flags & FLAGS.endStream) !== 0;
    if ((flags & FLAGS.endHeaders) !== 0) return { streamId, block: fragment, endStream };
    this.open = { streamId, endStream, fragments: [fragment], bytes: fragment.length };
    return null;
  }

  private continuation(flags: number, streamId: number, payload: Buffer): RawBlock | null {
    const open = this.open;
    if (open === null || open.streamId !== streamId) throw new H2ConnectionError(ERROR_CODE.protocol, 'CONTINUATION without HEADERS');
    open.fragments.push(payload);
    open.bytes += payload.length;
    if (open.bytes > HEADER_BLOCK_BYTES_MAX) throw new H2ConnectionError(ERROR_CODE.enhanceYourCalm, 'header block too large');
    if ((flags & FLAGS.endHeaders) === 0) return null;
    this.open = null;
    return { streamId, block: Buffer.concat(open.fragments), endStream: open.endStream };
  }
}

interface RawBlock {
  readonly streamId: number;
  readonly block: Buffer;
  readonly endStream: boolean;
}

/** What the other end's SETTINGS ask of what we send. */
export interface PeerSettings {
  initialWindow: number;
  maxFramePayload: number;
}

/**
 * Applies a SETTINGS frame to `settings`; false for an acknowledgement (nothing to apply or
 * acknowledge). Returns the change of the initial stream window, for the open streams.
 */
export function applySettings(flags: number, streamId: number, payload: Buffer, settings: PeerSettings): { isAck: boolean; windowDelta: number } {
  if (streamId !== 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'SETTINGS on a stream');
  if ((flags & FLAGS.ack) !== 0) {
    if (payload.length !== 0) throw new H2ConnectionError(ERROR_CODE.frameSize, 'SETTINGS ack with a payload');
    return { isAck: true, windowDelta: 0 };
  }
  if (payload.length % 6 !== 0) throw new H2ConnectionError(ERROR_CODE.frameSize, 'SETTINGS of the wrong size');
  let windowDelta = 0;
  for (let at = 0; at < payload.length; at += 6) {
    const id = payload.readUInt16BE(at);
    const value = payload.readUInt32BE(at + 2);
    if (id === SETTING.enablePush && value > 1) throw new H2ConnectionError(ERROR_CODE.protocol, 'SETTINGS_ENABLE_PUSH above 1');
    if (id === SETTING.initialWindowSize) {
      if (value > WINDOW_BYTES_MAX) throw new H2ConnectionError(ERROR_CODE.flowControl, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
      windowDelta += value - settings.initialWindow;
      settings.initialWindow = value;
    }
    if (id === SETTING.maxFrameSize) {
      if (value < DEFAULT_FRAME_PAYLOAD_BYTES || value > 0xff_ffff) throw new H2ConnectionError(ERROR_CODE.protocol, 'SETTINGS_MAX_FRAME_SIZE out of range');
      settings.maxFramePayload = value;
    }
    // Header table size: our blocks never use the dynamic table. The rest do not apply to us.
  }
  return { isAck: false, windowDelta };
}

/** Moves every open stream's send window by a change of the initial window (RFC 9113 §6.9.2). */
export function shiftStreamWindows(streams: Iterable<{ sendWindow: number }>, delta: number): void {
  if (delta === 0) return;
  for (const stream of streams) {
    stream.sendWindow += delta;
    if (stream.sendWindow > WINDOW_BYTES_MAX) throw new H2ConnectionError(ERROR_CODE.flowControl, 'a stream window above 2^31-1');
  }
}

export function checkPing(streamId: number, payload: Buffer): void {
  if (streamId !== 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'PING on a stream');
  if (payload.length !== 8) throw new H2ConnectionError(ERROR_CODE.frameSize, 'PING of the wrong size');
}

/** A WINDOW_UPDATE's increment (0 is left to the caller: a connection error on stream 0 only). */
export function windowIncrement(payload: Buffer): number {
  if (payload.length !== 4) throw new H2ConnectionError(ERROR_CODE.frameSize, 'WINDOW_UPDATE of the wrong size');
  return payload.readUInt32BE(0) & 0x7fff_ffff;
}

/** Raises the connection's send window by a WINDOW_UPDATE on stream 0. */
export function connectionWindowAfter(window: number, increment: number): number {
  if (increment === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'WINDOW_UPDATE of 0');
  const next = window + increment;
  if (next > WINDOW_BYTES_MAX) throw new H2ConnectionError(ERROR_CODE.flowControl, 'connection window above 2^31-1');
  return next;
}
