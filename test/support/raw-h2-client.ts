// A raw HTTP/2 client for wire-level gRPC tests: frames are written as given and every frame the
// server sends is recorded, so a test can see what a library client hides (flow-control windows,
// frame sizes, trailers-only answers, GOAWAY). It keeps the flow-control books of both sides and
// records any DATA the server sends beyond what this client granted.
import { connect, type Socket } from 'node:net';
import {
  CLIENT_PREFACE, FrameReader, encodeFrame, headersFragment,
} from '../../store/api/h2/frames.js';
import { HpackDecoder, encodeLiterals, type HeaderList } from '../../store/api/h2/hpack.js';
import { waitFor } from './ports.js';

export const FRAME = {
  data: 0x0, headers: 0x1, rstStream: 0x3, settings: 0x4, ping: 0x6, goaway: 0x7,
  windowUpdate: 0x8, continuation: 0x9,
} as const;
export const FLAGS = { endStream: 0x1, ack: 0x1, endHeaders: 0x4, padded: 0x8 } as const;
export const SETTING = { enablePush: 0x2, initialWindowSize: 0x4, maxFrameSize: 0x5 } as const;
/** RFC 9113 §7 error codes used here. */
export const H2_ERROR = { noError: 0x0, protocol: 0x1, cancel: 0x8 } as const;

/** Every stream's and the connection's window start here (RFC 9113 §6.9.2). */
const DEFAULT_WINDOW = 65_535;
const DEFAULT_FRAME_SIZE = 16_384;

export interface RawH2Options {
  /** This client's SETTINGS_INITIAL_WINDOW_SIZE (the server's window into each stream). */
  readonly initialWindowSize?: number;
  /** This client's SETTINGS_MAX_FRAME_SIZE; the server's DATA frames must stay within it. */
  readonly maxFrameSize?: number;
  /** Grant back every DATA frame's bytes (stream and connection) as soon as it is read. */
  readonly autoWindowUpdate?: boolean;
}

export interface HeaderBlock {
  readonly headers: HeaderList;
  readonly isEndStream: boolean;
}

export interface RawStream {
  readonly id: number;
  readonly headerBlocks: HeaderBlock[];
  readonly data: Buffer[];
  dataBytes: number;
  /** The server ended its side (END_STREAM on HEADERS or DATA). */
  isEnded: boolean;
  rstCode: number | null;
  /** DATA the server may still send on this stream before this client grants more. */
  receiveWindow: number;
  /** DATA this client may still send, and what waits for room. */
  sendWindow: number;
  readonly outbox: { payload: Buffer; isEnd: boolean }[];
}

export interface GoAway {
  readonly lastStreamId: number;
  readonly code: number;
  readonly debug: string;
}

/** What a finished gRPC call looked like on the wire. */
export interface GrpcReply {
  readonly status: number | null;
  readonly message: string;
  readonly messages: Buffer[];
  /** The call was answered by one HEADERS frame with END_STREAM (RFC: "Trailers-Only"). */
  readonly isTrailersOnly: boolean;
  readonly headerBlocks: readonly HeaderBlock[];
  readonly rstCode: number | null;
}

export class RawH2Connection {
  readonly streams = new Map<number, RawStream>();
  readonly pingAcks: Buffer[] = [];
  /** Problems with what the server sent (oversized frames, DATA beyond a window), in order. */
  readonly violations: string[] = [];
  settingsAcks = 0;
  goAway: GoAway | null = null;
  isClosed = false;
  /** The largest DATA payload the server sent. */
  largestDataFrame = 0;
  private readonly reader = new FrameReader();
  private readonly decoder = new HpackDecoder();
  private readonly ownInitialWindow: number;
  private readonly ownMaxFrame: number;
  private connectionReceiveWindow = DEFAULT_WINDOW;
  private connectionSendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_FRAME_SIZE;
  private nextId = 1;
  private pendingBlock: { streamId: number; isEndStream: boolean; parts: Buffer[] } | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly authority: string,
    private readonly options: RawH2Options,
  ) {
    this.ownInitialWindow = options.initialWindowSize ?? DEFAULT_WINDOW;
    this.ownMaxFrame = options.maxFrameSize ?? DEFAULT_FRAME_SIZE;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.receive(chunk);
      } catch (err) {
        // Bytes this client cannot read: recorded for the test, and the connection dropped.
        const reason = err instanceof Error ? err.message : String(err);
        this.violations.push(`unreadable frames: ${reason}`);
        socket.destroy();
      }
    });
    socket.on('close', () => { this.isClosed = true; });
    socket.on('error', () => { this.isClosed = true; });
  }

  /** Connects and sends the preface with this client's SETTINGS (push disabled). */
  static async open(endpoint: string, options: RawH2Options = {}): Promise<RawH2Connection> {
    const [host, port] = splitEndpoint(endpoint);
    const socket = connect({ host, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const connection = new RawH2Connection(socket, endpoint, options);
    const settings: [number, number][] = [[SETTING.enablePush, 0]];
    if (options.initialWindowSize !== undefined) {
      settings.push([SETTING.initialWindowSize, options.initialWindowSize]);
    }
    if (options.maxFrameSize !== undefined) {
      settings.push([SETTING.maxFrameSize, options.maxFrameSize]);
    }
    connection.write(Buffer.concat([CLIENT_PREFACE, settingsFrame(settings)]));
    return connection;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Opens a gRPC call: request headers for `path` plus `extra`, in one HEADERS frame. */
  startCall(path: string, extra: HeaderList = []): number {
    const id = this.openStream();
    const block = encodeLiterals(this.requestHeaders(path, extra));
    this.write(encodeFrame(FRAME.headers, FLAGS.endHeaders, id, block));
    return id;
  }

  /** Request headers for `path` as a gRPC client sends them, then `extra`. */
  requestHeaders(path: string, extra: HeaderList = []): HeaderList {
    return [
      [':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', this.authority],
      ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra,
    ];
  }

  /** A new client stream id, with its books opened. */
  openStream(): number {
    const id = this.nextId;
    this.nextId += 2;
    this.streams.set(id, {
      id, headerBlocks: [], data: [], dataBytes: 0, isEnded: false, rstCode: null,
      receiveWindow: this.ownInitialWindow, sendWindow: this.peerInitialWindow, outbox: [],
    });
    return id;
  }

  /** One length-prefixed gRPC message as DATA, held back while the server's windows are full. */
  sendMessage(id: number, message: Buffer, isEnd: boolean, isCompressed = false): void {
    this.sendData(id, grpcFrame(message, isCompressed), isEnd);
  }

  sendData(id: number, payload: Buffer, isEnd: boolean): void {
    this.stream(id).outbox.push({ payload, isEnd });
    this.flush();
  }

  rstStream(id: number, code: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    this.write(encodeFrame(FRAME.rstStream, 0, id, payload));
  }

  ping(payload: Buffer): void {
    this.write(encodeFrame(FRAME.ping, 0, 0, payload));
  }

  settings(values: readonly [number, number][]): void {
    this.write(settingsFrame(values));
  }

  /** Grants the server `increment` more bytes on `streamId` (0: the connection). */
  grant(streamId: number, increment: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(increment);
    this.write(encodeFrame(FRAME.windowUpdate, 0, streamId, payload));
    if (streamId === 0) this.connectionReceiveWindow += increment;
    else this.stream(streamId).receiveWindow += increment;
  }

  stream(id: number): RawStream {
    const found = this.streams.get(id);
    if (found === undefined) throw new Error(`no stream ${id}`);
    return found;
  }

  /** Waits (bounded) until `holds` is true. */
  async until(what: string, holds: () => boolean, timeoutMs = 5_000): Promise<void> {
    await waitFor(what, () => (holds() ? true : undefined), timeoutMs, 5);
  }

  /** A PING round trip: everything the server wrote before its acknowledgement has been read. */
  async barrier(timeoutMs = 5_000): Promise<void> {
    const payload = Buffer.from(`b${String(this.pingAcks.length).padStart(7, '0')}`);
    this.ping(payload);
    const isAcked = (): boolean => this.pingAcks.some((ack) => ack.equals(payload));
    await this.until('a PING acknowledgement', isAcked, timeoutMs);
  }

  /** Waits until the server has ended or reset stream `id`, and reads the call's outcome. */
  async reply(id: number, timeoutMs = 10_000): Promise<GrpcReply> {
    const stream = this.stream(id);
    await waitFor(`stream ${id} to end`, () => {
      if (stream.isEnded || stream.rstCode !== null) return true;
      if (this.isClosed) throw new Error(`connection closed before stream ${id} ended`);
      return undefined;
    }, timeoutMs, 5);
    return grpcReply(stream);
  }

  private flush(): void {
    for (const stream of this.streams.values()) {
      while (stream.outbox.length > 0) {
        const next = stream.outbox[0] as { payload: Buffer; isEnd: boolean };
        const room = Math.min(this.connectionSendWindow, stream.sendWindow, this.peerMaxFrame);
        if (next.payload.length > 0 && room <= 0) break;
        const size = Math.min(room, next.payload.length);
        const isLast = size === next.payload.length;
        const flags = isLast && next.isEnd ? FLAGS.endStream : 0;
        this.write(encodeFrame(FRAME.data, flags, stream.id, next.payload.subarray(0, size)));
        this.connectionSendWindow -= size;
        stream.sendWindow -= size;
        if (isLast) stream.outbox.shift();
        else next.payload = next.payload.subarray(size);
      }
    }
  }

  private receive(chunk: Buffer): void {
    for (const frame of this.reader.push(chunk)) {
      switch (frame.type) {
        case FRAME.settings: this.onSettings(frame.flags, frame.payload); break;
        case FRAME.ping:
          if ((frame.flags & FLAGS.ack) !== 0) this.pingAcks.push(Buffer.from(frame.payload));
          else this.write(encodeFrame(FRAME.ping, FLAGS.ack, 0, frame.payload));
          break;
        case FRAME.windowUpdate:
          this.onWindowUpdate(frame.streamId, frame.payload.readUInt32BE(0) & 0x7fff_ffff);
          break;
        case FRAME.headers: {
          const { fragment } = headersFragment(frame);
          const isEndStream = (frame.flags & FLAGS.endStream) !== 0;
          this.pendingBlock = { streamId: frame.streamId, isEndStream, parts: [fragment] };
          if ((frame.flags & FLAGS.endHeaders) !== 0) this.endBlock();
          break;
        }
        case FRAME.continuation:
          this.pendingBlock?.parts.push(frame.payload);
          if ((frame.flags & FLAGS.endHeaders) !== 0) this.endBlock();
          break;
        case FRAME.data: this.onData(frame.streamId, frame.flags, frame.payload); break;
        case FRAME.rstStream: {
          const stream = this.streams.get(frame.streamId);
          if (stream !== undefined) stream.rstCode = frame.payload.readUInt32BE(0);
          break;
        }
        case FRAME.goaway:
          this.goAway = {
            lastStreamId: frame.payload.readUInt32BE(0) & 0x7fff_ffff,
            code: frame.payload.readUInt32BE(4),
            debug: frame.payload.subarray(8).toString(),
          };
          break;
        default: break;
      }
    }
  }

  private onSettings(flags: number, payload: Buffer): void {
    if ((flags & FLAGS.ack) !== 0) {
      this.settingsAcks += 1;
      return;
    }
    for (let at = 0; at + 6 <= payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === SETTING.initialWindowSize) {
        const delta = value - this.peerInitialWindow;
        for (const stream of this.streams.values()) stream.sendWindow += delta;
        this.peerInitialWindow = value;
      } else if (id === SETTING.maxFrameSize) {
        this.peerMaxFrame = value;
      }
    }
    this.write(encodeFrame(FRAME.settings, FLAGS.ack, 0, Buffer.alloc(0)));
    this.flush();
  }

  private onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) this.connectionSendWindow += increment;
    else {
      const stream = this.streams.get(streamId);
      if (stream !== undefined) stream.sendWindow += increment;
    }
    this.flush();
  }

  private onData(streamId: number, flags: number, payload: Buffer): void {
    const stream = this.streams.get(streamId);
    this.largestDataFrame = Math.max(this.largestDataFrame, payload.length);
    if (payload.length > this.ownMaxFrame) {
      this.violations.push(
        `DATA of ${payload.length} bytes on stream ${streamId} (max frame ${this.ownMaxFrame})`);
    }
    this.connectionReceiveWindow -= payload.length;
    if (this.connectionReceiveWindow < 0) {
      this.violations.push(`connection window overrun by ${-this.connectionReceiveWindow} bytes`);
    }
    if (stream === undefined) {
      this.violations.push(`DATA on stream ${streamId}, which this client never opened`);
      return;
    }
    stream.receiveWindow -= payload.length;
    if (stream.receiveWindow < 0) {
      this.violations.push(`stream ${streamId} window overrun by ${-stream.receiveWindow} bytes`);
    }
    // A padded frame: one length byte first, that many padding bytes last (all count as flow).
    const isPadded = (flags & FLAGS.padded) !== 0;
    const body = isPadded ? payload.subarray(1, payload.length - (payload[0] ?? 0)) : payload;
    stream.data.push(Buffer.from(body));
    stream.dataBytes += body.length;
    if ((flags & FLAGS.endStream) !== 0) stream.isEnded = true;
    if (this.options.autoWindowUpdate === true && payload.length > 0) {
      this.grant(0, payload.length);
      if (!stream.isEnded) this.grant(streamId, payload.length);
    }
  }

  private endBlock(): void {
    const block = this.pendingBlock;
    this.pendingBlock = null;
    if (block === null) return;
    const headers = this.decoder.decode(Buffer.concat(block.parts));
    const stream = this.streams.get(block.streamId);
    if (stream === undefined) return;
    stream.headerBlocks.push({ headers, isEndStream: block.isEndStream });
    if (block.isEndStream) stream.isEnded = true;
  }
}

export function settingsFrame(values: readonly [number, number][]): Buffer {
  const payload = Buffer.alloc(values.length * 6);
  values.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return encodeFrame(FRAME.settings, 0, 0, payload);
}

/** The gRPC length-prefixed form of one message (compressed flag, 4-byte length, bytes). */
export function grpcFrame(message: Buffer, isCompressed = false): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = isCompressed ? 1 : 0;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** The value of header `name` in a block ('' when absent). */
export function headerValue(block: HeaderBlock | undefined, name: string): string {
  return block?.headers.find(([key]) => key === name)?.[1] ?? '';
}

function grpcReply(stream: RawStream): GrpcReply {
  const trailers = stream.headerBlocks.at(-1);
  const hasTrailers = trailers?.isEndStream === true;
  const status = hasTrailers ? headerValue(trailers, 'grpc-status') : '';
  return {
    status: status === '' ? null : Number(status),
    message: percentDecode(hasTrailers ? headerValue(trailers, 'grpc-message') : ''),
    messages: splitMessages(Buffer.concat(stream.data)),
    isTrailersOnly: stream.headerBlocks.length === 1 && hasTrailers && stream.dataBytes === 0,
    headerBlocks: stream.headerBlocks,
    rstCode: stream.rstCode,
  };
}

/** gRPC length-prefixed messages back out of a stream's DATA (uncompressed only). */
export function splitMessages(bytes: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const length = bytes.readUInt32BE(at + 1);
    if (at + 5 + length > bytes.length) break;
    messages.push(bytes.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return messages;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec); a stray % stays as it is. */
function percentDecode(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.slice(i + 1, i + 3);
    if (value[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function splitEndpoint(endpoint: string): [string, number] {
  const at = endpoint.lastIndexOf(':');
  return [endpoint.slice(0, at), Number(endpoint.slice(at + 1))];
}
