/** HTTP/2's numbers (RFC 9113 §6, §7, §11) that the server connection speaks. */
export const FRAME = {
  data: 0x0, headers: 0x1, priority: 0x2, rstStream: 0x3, settings: 0x4, pushPromise: 0x5,
  ping: 0x6, goaway: 0x7, windowUpdate: 0x8, continuation: 0x9,
} as const;

export const FLAGS = { endStream: 0x1, ack: 0x1, endHeaders: 0x4, padded: 0x8, priority: 0x20 } as const;

export const SETTING = {
  headerTableSize: 0x1, enablePush: 0x2, maxConcurrentStreams: 0x3, initialWindowSize: 0x4,
  maxFrameSize: 0x5, maxHeaderListSize: 0x6,
} as const;

export const ERROR_CODE = {
  noError: 0x0, protocol: 0x1, internal: 0x2, flowControl: 0x3, streamClosed: 0x5, frameSize: 0x6,
  refusedStream: 0x7, cancel: 0x8, compression: 0x9, enhanceYourCalm: 0xb,
} as const;

export const FRAME_HEADER_BYTES = 9;
/** The default and smallest SETTINGS_MAX_FRAME_SIZE. */
export const DEFAULT_FRAME_PAYLOAD_BYTES = 16_384;
/** The initial flow-control window of a connection and of a stream (RFC 9113 §6.9.2). */
export const DEFAULT_WINDOW_BYTES = 65_535;
/** A window may not exceed 2^31-1 (RFC 9113 §6.9.1). */
export const WINDOW_BYTES_MAX = 0x7fff_ffff;

/** A connection error: the connection ends with GOAWAY carrying `code`. */
export class H2ConnectionError extends Error {
  override readonly name = 'H2ConnectionError';

  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Writes a frame header into `target` at `at`. */
export function writeFrameHeader(
  target: Buffer, at: number, length: number, type: number, flags: number, streamId: number,
): void {
  target[at] = length >>> 16;
  target[at + 1] = (length >>> 8) & 0xff;
  target[at + 2] = length & 0xff;
  target[at + 3] = type;
  target[at + 4] = flags;
  target.writeUInt32BE(streamId, at + 5);
}

/** A whole frame in one buffer. */
export function frameOf(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(frame, 0, payload.length, type, flags, streamId);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const payload = Buffer.allocUnsafe(8 + text.length);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  text.copy(payload, 8);
  return frameOf(FRAME.goaway, 0, 0, payload);
}

export function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frameOf(FRAME.settings, 0, 0, payload);
}
