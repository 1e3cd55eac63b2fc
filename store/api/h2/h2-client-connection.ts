import type { Socket } from 'node:net';
import { CLIENT_PREFACE, headerBlockFrames } from './frames.js';
import { encodeLiterals, type HeaderList } from './hpack.js';
import {
  DEFAULT_FRAME_PAYLOAD_BYTES, DEFAULT_WINDOW_BYTES, ERROR_CODE, FLAGS, FRAME, FRAME_HEADER_BYTES,
  H2ConnectionError, SETTING, WINDOW_BYTES_MAX, frameOf, goawayFrame, settingsFrame, writeFrameHeader,
} from './h2-protocol.js';
import {
  HeaderBlockReader, applySettings, checkPing, connectionWindowAfter, dataContent, readFrames, shiftStreamWindows,
  windowIncrement, type PeerSettings,
} from './frame-input.js';

/** What the layer above hears of one request stream. */
export interface H2ClientStreamHandler {
  /** A header block from the server: the response headers, then (END_STREAM) the trailers. */
  onHeaders(headers: HeaderList, endStream: boolean): void;
  /** A DATA frame's content (padding removed); `endStream` when it is the last. */
  onData(content: Buffer, endStream: boolean): void;
  /**
   * The stream ended without the server finishing it: RST_STREAM or GOAWAY (`code` is HTTP/2's
   * error code), or the connection is gone (CONNECTION_LOST).
   */
  onReset(code: number, reason: string): void;
}

/** onReset's code when the connection itself ended. */
export const CONNECTION_LOST = -1;

export interface H2ClientOptions {
  /** PING every `intervalMs`; the connection is dropped when one is not answered in `timeoutMs`. */
  readonly keepalive: { readonly intervalMs: number; readonly timeoutMs: number } | null;
  /** The server's first SETTINGS arrived: the connection is usable. */
  readonly onReady: () => void;
  /** The connection is over (socket closed, or a protocol error); `reason` says why. */
  readonly onClosed: (reason: string) => void;
  /** The server sent GOAWAY: no new streams here (those at or below its last id go on). */
  readonly onGoaway: () => void;
  /** An exception from the layer above while handling input (a bug): the connection ends with it. */
  readonly onInternalError: (err: unknown) => void;
}

/** Receive windows we grant (as our server does), given back as bytes are read. */
const STREAM_RECEIVE_WINDOW_BYTES = 1 << 20;
const CONNECTION_RECEIVE_WINDOW_BYTES = 16 << 20;
/** Stream ids are 31 bits; a connection that used them all takes no new stream. */
const STREAM_ID_MAX = 0x7fff_ffff;
const KEEPALIVE_PAYLOAD = Buffer.from('etcronkc', 'latin1');
const EMPTY = Buffer.alloc(0);

/**
 * One request stream. Data leaves as soon as both windows allow; the rest waits here, in order,
 * with the END_STREAM that follows it.
 */
export class H2ClientStream {
  sendWindow: number;
  private readonly queue: { bytes: Buffer; done: (() => void) | null }[] = [];
  private queuedBytes = 0;
  private isEndQueued = false;
  /** We sent END_STREAM, or the stream is over: nothing more is written. */
  isEnded = false;
  /** The stream left the connection's table: over for both sides. */
  isClosed = false;
  /** Bytes received and not yet given back as stream window. */
  private receiveUnacked = 0;
  handler: H2ClientStreamHandler | null = null;

  constructor(private readonly connection: H2ClientConnection, readonly id: number, initialWindow: number) {
    this.sendWindow = initialWindow;
  }

  /** Sends `bytes` as DATA; `done` runs once they have been handed to the socket. */
  write(bytes: Buffer, done: (() => void) | null = null): void {
    if (this.isEnded || this.isEndQueued || this.isClosed) return;
    if (this.queue.length === 0 && this.connection.trySend(this, bytes)) {
      done?.();
      return;
    }
    this.queue.push({ bytes, done });
    this.queuedBytes += bytes.length;
    // What the windows hold leaves now (the server grants more only as it reads); the rest waits.
    if (!this.sendQueued()) this.connection.block(this);
  }

  /** Half-closes the stream once the queued data has left. */
  end(): void {
    if (this.isEnded || this.isEndQueued) return;
    this.isEndQueued = true;
    if (this.queue.length === 0) this.connection.sendEnd(this);
  }

  /** Ends the stream now with RST_STREAM; nothing more is heard of it. */
  reset(code: number = ERROR_CODE.cancel): void {
    // Also after our END_STREAM: the server may still be answering, and should stop.
    if (this.isClosed) return;
    this.connection.resetStream(this, code);
  }

  /** Sends queued data while the windows allow; true when nothing is left. */
  sendQueued(): boolean {
    while (this.queue.length > 0) {
      const head = this.queue[0] as { bytes: Buffer; done: (() => void) | null };
      const room = Math.min(this.sendWindow, this.connection.sendWindow);
      if (room <= 0) return false;
      if (head.bytes.length <= room) {
        this.connection.trySend(this, head.bytes);
        this.queue.shift();
        this.queuedBytes -= head.bytes.length;
        head.done?.();
        continue;
      }
      this.connection.trySend(this, head.bytes.subarray(0, room));
      head.bytes = head.bytes.subarray(room);
      this.queuedBytes -= room;
    }
    if (this.isEndQueued && !this.isEnded) this.connection.sendEnd(this);
    return true;
  }

  /** Counts received DATA; returns the window to give back, once half of it is used. */
  consumed(bytes: number): number {
    this.receiveUnacked += bytes;
    if (this.receiveUnacked < STREAM_RECEIVE_WINDOW_BYTES / 2) return 0;
    const grant = this.receiveUnacked;
    this.receiveUnacked = 0;
    return grant;
  }

  /** Drops what waits; its write callbacks are not called. */
  clear(): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/**
 * The client side of one HTTP/2 connection (RFC 9113) on a connected socket, for gRPC between
 * members: requests as streams, flow control both ways, SETTINGS, PING (keepalive both ways),
 * GOAWAY. Frames are written to the socket when they are made, not gathered for a later turn: a
 * Raft message leaves in the same turn it was sent in, which is what a write's latency needs.
 */
export class H2ClientConnection {
  private readonly streams = new Map<number, H2ClientStream>();
  private readonly blocked = new Set<H2ClientStream>();
  private pending: Buffer = EMPTY;
  private nextStreamId = 1;
  private readonly headerBlocks = new HeaderBlockReader();
  private receiveUnacked = 0;
  private isReady = false;
  private isGoingAway = false;
  private isClosed = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private pingSentAt = 0;

  sendWindow = DEFAULT_WINDOW_BYTES;
  private readonly peer: PeerSettings = { initialWindow: DEFAULT_WINDOW_BYTES, maxFramePayload: DEFAULT_FRAME_PAYLOAD_BYTES };

  constructor(readonly socket: Socket, private readonly options: H2ClientOptions) {
    this.writeAll([
      CLIENT_PREFACE,
      settingsFrame([[SETTING.enablePush, 0], [SETTING.initialWindowSize, STREAM_RECEIVE_WINDOW_BYTES]]),
      this.wordFrame(FRAME.windowUpdate, 0, CONNECTION_RECEIVE_WINDOW_BYTES - DEFAULT_WINDOW_BYTES),
    ]);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.onSocketClosed('connection closed'));
    const keepalive = options.keepalive;
    if (keepalive !== null) {
      this.keepaliveTimer = setInterval(() => this.keepaliveTick(keepalive.timeoutMs), keepalive.intervalMs);
      this.keepaliveTimer.unref();
    }
  }

  /** Whether new streams may be opened here. */
  get isUsable(): boolean {
    return this.isReady && !this.isGoingAway && !this.isClosed && this.nextStreamId <= STREAM_ID_MAX;
  }

  /** Opens a stream with the request headers `headers`. The caller checked isUsable. */
  openStream(headers: HeaderList, handler: H2ClientStreamHandler): H2ClientStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new H2ClientStream(this, id, this.peer.initialWindow);
    stream.handler = handler;
    this.streams.set(id, stream);
    this.writeAll(headerBlockFrames(id, encodeLiterals(headers), false, null));
    return stream;
  }

  /** Ends the connection: GOAWAY, then the socket; open streams are reset. */
  close(reason = 'connection closed by this member'): void {
    if (this.isClosed) return;
    this.goAway(ERROR_CODE.noError, '', reason);
  }

  /** GOAWAY with `code`, the socket ended (destroyed after 1 s: a peer that stopped reading would hold it). */
  private goAway(code: number, debug: string, reason: string): void {
    this.writeAll([goawayFrame(0, code, debug)]);
    this.socket.end();
    this.onSocketClosed(reason);
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Drops the connection at once (one still connecting, or at shutdown). */
  destroy(reason: string): void {
    this.socket.destroy();
    this.onSocketClosed(reason);
  }

  // ---- output -------------------------------------------------------------------------------

  /** Runs `write` with the socket corked: the frames it makes leave in one write. */
  batch(write: () => void): void {
    this.socket.cork();
    try {
      write();
    } finally {
      this.socket.uncork();
    }
  }

  private writeAll(frames: readonly Buffer[]): void {
    if (this.socket.destroyed) return;
    if (frames.length === 1) {
      this.socket.write(frames[0] as Buffer);
      return;
    }
    this.socket.cork();
    for (const frame of frames) this.socket.write(frame);
    this.socket.uncork();
  }

  /**
   * Sends `bytes` of `stream` as DATA frames now if both windows hold all of them; false (and
   * nothing sent) otherwise. Frames larger than the server allows are split.
   */
  trySend(stream: H2ClientStream, bytes: Buffer): boolean {
    if (this.isClosed) return true;
    if (bytes.length > stream.sendWindow || bytes.length > this.sendWindow) return false;
    stream.sendWindow -= bytes.length;
    this.sendWindow -= bytes.length;
    const maxPayload = this.peer.maxFramePayload;
    if (bytes.length <= maxPayload && bytes.length <= 1024) {
      const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bytes.length);
      writeFrameHeader(frame, 0, bytes.length, FRAME.data, 0, stream.id);
      bytes.copy(frame, FRAME_HEADER_BYTES);
      this.writeAll([frame]);
      return true;
    }
    const pieces: Buffer[] = [];
    for (let at = 0; at === 0 || at < bytes.length; at += maxPayload) {
      const end = Math.min(bytes.length, at + maxPayload);
      const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(header, 0, end - at, FRAME.data, 0, stream.id);
      pieces.push(header, bytes.subarray(at, end));
    }
    this.writeAll(pieces);
    return true;
  }

  sendEnd(stream: H2ClientStream): void {
    if (stream.isEnded) return;
    this.writeAll([frameOf(FRAME.data, FLAGS.endStream, stream.id, EMPTY)]);
    stream.isEnded = true;
    if (stream.handler === null) this.forget(stream);
  }

  block(stream: H2ClientStream): void {
    this.blocked.add(stream);
  }

  private drainBlocked(): void {
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0) return;
      if (stream.sendQueued()) this.blocked.delete(stream);
    }
  }

  resetStream(stream: H2ClientStream, code: number): void {
    this.writeAll([this.wordFrame(FRAME.rstStream, stream.id, code)]);
    stream.isEnded = true;
    stream.handler = null;
    this.forget(stream);
  }

  private forget(stream: H2ClientStream): void {
    stream.isClosed = true;
    stream.clear();
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
  }

  private wordFrame(type: number, streamId: number, word: number): Buffer {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(frame, 0, 4, type, 0, streamId);
    frame.writeUInt32BE(word, FRAME_HEADER_BYTES);
    return frame;
  }

  private keepaliveTick(timeoutMs: number): void {
    const now = Date.now();
    if (this.pingSentAt !== 0) {
      // A peer that stopped answering is not told anything: the socket is dropped.
      if (now - this.pingSentAt >= timeoutMs) this.destroy('keepalive ping not answered');
      return;
    }
    this.pingSentAt = now;
    this.writeAll([frameOf(FRAME.ping, 0, 0, KEEPALIVE_PAYLOAD)]);
  }

  // ---- input --------------------------------------------------------------------------------

  private onBytes(chunk: Buffer): void {
    if (this.isClosed) return;
    const bytes = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      const at = readFrames(bytes, this.isOpen, this.onFrame);
      this.pending = at === bytes.length ? EMPTY : bytes.subarray(at);
    } catch (err) {
      this.fail(err);
    }
  }

  private readonly isOpen = (): boolean => !this.isClosed;

  private readonly onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
    if (!this.isReady && type !== FRAME.settings) throw new H2ConnectionError(ERROR_CODE.protocol, 'the server did not start with SETTINGS');
    this.headerBlocks.checkOrder(type, streamId);
    switch (type) {
      case FRAME.data: this.onData(flags, streamId, payload); break;
      case FRAME.headers: case FRAME.continuation: this.onHeaderFrame(type, flags, streamId, payload); break;
      case FRAME.rstStream: this.onRstStream(streamId, payload); break;
      case FRAME.settings: this.onSettings(flags, streamId, payload); break;
      case FRAME.ping: this.onPing(flags, streamId, payload); break;
      case FRAME.goaway: this.onGoaway(streamId, payload); break;
      case FRAME.windowUpdate: this.onWindowUpdate(streamId, payload); break;
      case FRAME.pushPromise: throw new H2ConnectionError(ERROR_CODE.protocol, 'PUSH_PROMISE though push is disabled');
      default: break; // PRIORITY and unknown types are ignored
    }
  };

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'DATA on stream 0');
    this.receiveUnacked += payload.length;
    if (this.receiveUnacked > CONNECTION_RECEIVE_WINDOW_BYTES) throw new H2ConnectionError(ERROR_CODE.flowControl, 'connection window exceeded');
    const grants: Buffer[] = [];
    if (this.receiveUnacked >= CONNECTION_RECEIVE_WINDOW_BYTES / 4) {
      grants.push(this.wordFrame(FRAME.windowUpdate, 0, this.receiveUnacked));
      this.receiveUnacked = 0;
    }
    const stream = this.streams.get(streamId);
    const endStream = (flags & FLAGS.endStream) !== 0;
    if (stream !== undefined && !endStream) {
      const grant = stream.consumed(payload.length);
      if (grant > 0) grants.push(this.wordFrame(FRAME.windowUpdate, streamId, grant));
    }
    if (grants.length > 0) this.writeAll(grants);
    if (stream === undefined || stream.handler === null) return;
    const content = dataContent(flags, payload);
    const handler = stream.handler;
    if (endStream) this.finished(stream);
    handler.onData(content, endStream);
  }

  /** The server ended its side: the stream is over once ours is too (ours is not waited for). */
  private finished(stream: H2ClientStream): void {
    stream.handler = null;
    if (!stream.isEnded) this.resetStream(stream, ERROR_CODE.noError);
    else this.forget(stream);
  }

  /** HEADERS or CONTINUATION: a whole block goes on to onHeaderBlock. */
  private onHeaderFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (type === FRAME.headers && (streamId === 0)) throw new H2ConnectionError(ERROR_CODE.protocol, 'HEADERS on stream 0');
    const whole = this.headerBlocks.read(type, flags, streamId, payload);
    if (whole !== null) this.onHeaderBlock(whole.streamId, whole.headers, whole.endStream);
  }

  private onHeaderBlock(streamId: number, headers: HeaderList, endStream: boolean): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined || stream.handler === null) return;
    const handler = stream.handler;
    if (endStream) this.finished(stream);
    handler.onHeaders(headers, endStream);
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ConnectionError(ERROR_CODE.frameSize, 'RST_STREAM of the wrong size');
    if (streamId === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'RST_STREAM on stream 0');
    const stream = this.streams.get(streamId);
    const code = payload.readUInt32BE(0);
    if (stream !== undefined) this.abortStream(stream, code, `stream reset by the server (HTTP/2 error code ${code})`);
  }

  /** The stream is over without the server finishing it: it leaves, and its handler hears why. */
  private abortStream(stream: H2ClientStream, code: number, reason: string): void {
    const handler = stream.handler;
    stream.isEnded = true;
    stream.handler = null;
    this.forget(stream);
    handler?.onReset(code, reason);
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    const { isAck, windowDelta } = applySettings(flags, streamId, payload, this.peer);
    if (isAck) return;
    // Our header blocks are literals (no table); we open few streams, far below any limit.
    shiftStreamWindows(this.streams.values(), windowDelta);
    this.writeAll([frameOf(FRAME.settings, FLAGS.ack, 0, EMPTY)]);
    this.drainBlocked();
    if (!this.isReady) {
      this.isReady = true;
      this.options.onReady();
    }
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    checkPing(streamId, payload);
    if ((flags & FLAGS.ack) === 0) this.writeAll([frameOf(FRAME.ping, FLAGS.ack, 0, payload)]);
    else if (payload.equals(KEEPALIVE_PAYLOAD)) this.pingSentAt = 0;
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2ConnectionError(ERROR_CODE.frameSize, 'GOAWAY of the wrong size');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fff_ffff;
    const code = payload.readUInt32BE(4);
    const debug = payload.subarray(8).toString('utf8');
    const wasGoingAway = this.isGoingAway;
    this.isGoingAway = true;
    // Streams the server never took may be retried elsewhere: REFUSED_STREAM says so.
    for (const stream of [...this.streams.values()]) {
      if (stream.id <= lastStreamId) continue;
      this.abortStream(stream, ERROR_CODE.refusedStream, `the server is going away${debug === '' ? '' : `: ${debug}`} (HTTP/2 error code ${code})`);
    }
    if (!wasGoingAway) this.options.onGoaway();
    if (this.streams.size === 0) this.close('the server went away');
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    const increment = windowIncrement(payload);
    if (streamId === 0) {
      this.sendWindow = connectionWindowAfter(this.sendWindow, increment);
      this.drainBlocked();
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0 || stream.sendWindow + increment > WINDOW_BYTES_MAX) {
      const handler = stream.handler;
      this.resetStream(stream, increment === 0 ? ERROR_CODE.protocol : ERROR_CODE.flowControl);
      handler?.onReset(ERROR_CODE.flowControl, 'the server broke flow control on the stream');
      return;
    }
    stream.sendWindow += increment;
    if (this.blocked.has(stream) && stream.sendQueued()) this.blocked.delete(stream);
  }

  // ---- ending -------------------------------------------------------------------------------

  private fail(err: unknown): void {
    if (!(err instanceof H2ConnectionError)) this.options.onInternalError(err);
    const code = err instanceof H2ConnectionError ? err.code : ERROR_CODE.internal;
    const message = err instanceof Error ? err.message : String(err);
    this.goAway(code, message, `HTTP/2 connection error: ${message}`);
  }

  private onSocketClosed(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    for (const stream of [...this.streams.values()]) this.abortStream(stream, CONNECTION_LOST, reason);
    this.options.onClosed(reason);
  }
}
