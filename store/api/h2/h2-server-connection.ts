import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CLIENT_PREFACE } from './frames.js';
import type { HeaderList } from './hpack.js';
import {
  DEFAULT_FRAME_PAYLOAD_BYTES, DEFAULT_WINDOW_BYTES, ERROR_CODE, FLAGS, FRAME, H2ConnectionError, SETTING,
  WINDOW_BYTES_MAX, goawayFrame, settingsFrame,
} from './h2-protocol.js';
import {
  HeaderBlockReader, applySettings, checkPing, connectionWindowAfter, dataContent, readFrames, shiftStreamWindows,
  windowIncrement, type PeerSettings,
} from './frame-input.js';
import { OutputBuffer } from './output-buffer.js';
import { H2ServerStream } from './h2-server-stream.js';

/** What the layer above does with a stream's input. */
export interface H2StreamHandler {
  /** A DATA frame's content (padding removed). */
  onData(payload: Buffer): void;
  /** The client half-closed the stream (END_STREAM): no more input. */
  onEndOfInput(): void;
  /** The stream is gone without our answer finishing it: client reset, or the connection ended. */
  onReset(): void;
}

export interface H2ServerOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS to announce and enforce; null for no limit. */
  readonly maxConcurrentStreams: number | null;
  /** A new request stream and its decoded header block: returns what handles its input. */
  readonly onStream: (stream: H2ServerStream, headers: HeaderList) => H2StreamHandler;
  readonly log: Logger;
  /**
   * Server pings (peer links): a PING every `intervalMs`, and the connection dropped when one is
   * not acknowledged within `timeoutMs`, so a link that stopped carrying bytes without closing
   * is let go. Null sends none (the client port, as etcd's 2 h default in effect).
   */
  readonly keepalive?: { readonly intervalMs: number; readonly timeoutMs: number } | null;
}

/** The payload of our keepalive PINGs (any 8 bytes; the acknowledgement echoes them). */
const KEEPALIVE_PAYLOAD = Buffer.from('etcronka', 'latin1');

/**
 * Receive windows we grant: 1 MiB per stream, 16 MiB for the connection. Input is taken as it
 * arrives (a request is decoded when complete), so windows are given back as bytes are read,
 * once half a stream's window or a quarter of the connection's has been used.
 */
const STREAM_RECEIVE_WINDOW_BYTES = 1 << 20;
const CONNECTION_RECEIVE_WINDOW_BYTES = 16 << 20;
/**
 * Above this many bytes waiting in the socket, stream data waits in its stream's queue (and
 * write callbacks wait with it), so a client that stops reading holds bounded memory here.
 */
const SOCKET_BUFFER_BYTES_MAX = 1 << 20;

const EMPTY = Buffer.alloc(0);

/**
 * The server side of one HTTP/2 connection on a socket (RFC 9113): frames in, frames out, flow
 * control both ways, a stream table. It knows nothing of gRPC; the layer above gets each request
 * stream's headers and data through `onStream`, and answers through H2ServerStream.
 *
 * Output is gathered and written once per turn of the event loop, so the answers to a batch of
 * requests leave in one socket write.
 */
export class H2ServerConnection {
  private readonly streams = new Map<number, H2ServerStream>();
  private pending: Buffer = EMPTY;
  private isPrefaceRead = false;
  /** Highest stream id the client opened; lower ids not in `streams` are closed. */
  private lastStreamId = 0;
  private readonly headerBlocks = new HeaderBlockReader();
  private output = new OutputBuffer();
  private outCallbacks: (() => void)[] = [];
  private isFlushScheduled = false;
  /** Set while a socket read is being processed (see scheduleFlushAfterRead). */
  private isReading = false;
  private isFlushAfterReadScheduled = false;
  /** Streams with data waiting for window (or for the socket), in the order they blocked. */
  private readonly blocked = new Set<H2ServerStream>();
  private receiveUnacked = 0;
  private isGoingAway = false;
  private isClosed = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  /** Date.now() when the unacknowledged keepalive PING left; 0 when none is out. */
  private pingSentAt = 0;

  /** Flow control of what we send, as the client's SETTINGS and WINDOW_UPDATEs allow. */
  sendWindow = DEFAULT_WINDOW_BYTES;
  private readonly peer: PeerSettings = { initialWindow: DEFAULT_WINDOW_BYTES, maxFramePayload: DEFAULT_FRAME_PAYLOAD_BYTES };

  /** The client's SETTINGS_MAX_FRAME_SIZE: DATA frames we write stay within it. */
  get peerMaxFramePayload(): number {
    return this.peer.maxFramePayload;
  }

  constructor(readonly socket: Socket, private readonly options: H2ServerOptions) {
    const settings: [number, number][] = [
      [SETTING.initialWindowSize, STREAM_RECEIVE_WINDOW_BYTES],
      [SETTING.enablePush, 0],
    ];
    if (options.maxConcurrentStreams !== null) settings.push([SETTING.maxConcurrentStreams, options.maxConcurrentStreams]);
    this.enqueue(settingsFrame(settings));
    this.writeWord(FRAME.windowUpdate, 0, CONNECTION_RECEIVE_WINDOW_BYTES - DEFAULT_WINDOW_BYTES);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('drain', () => this.drainBlocked());
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.onSocketClosed());
    const keepalive = options.keepalive ?? null;
    if (keepalive !== null) {
      this.keepaliveTimer = setInterval(() => this.keepaliveTick(keepalive.timeoutMs), keepalive.intervalMs);
      this.keepaliveTimer.unref();
    }
  }

  private keepaliveTick(timeoutMs: number): void {
    const now = Date.now();
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt < timeoutMs) return;
      this.options.log.warn({ remote: this.socket.remoteAddress }, 'HTTP/2 keepalive ping not answered; dropping the connection');
      this.socket.destroy();
      return;
    }
    this.pingSentAt = now;
    this.writeFrame(FRAME.ping, 0, 0, KEEPALIVE_PAYLOAD);
  }

  /** Open streams (for the concurrency limit and tests). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Ends the connection politely: GOAWAY, then the socket once the output is written. */
  close(): void {
    if (this.isClosed) return;
    this.isGoingAway = true;
    this.enqueue(goawayFrame(this.lastStreamId, ERROR_CODE.noError));
    this.flush();
    this.socket.end();
    this.onSocketClosed();
  }

  // ---- output -------------------------------------------------------------------------------

  /** Queues whole frames for the next flush. */
  enqueue(bytes: Buffer): void {
    if (this.isClosed) return;
    this.output.append(bytes);
    this.scheduleFlush();
  }

  /** A frame with a payload; `callback` runs once it is handed to the socket. */
  private writeFrame(type: number, flags: number, streamId: number, payload: Buffer, callback?: () => void): void {
    if (this.isClosed) return;
    this.output.frame(type, flags, streamId, payload);
    if (callback !== undefined) this.outCallbacks.push(callback);
    this.scheduleFlush();
  }

  /** WINDOW_UPDATE or RST_STREAM. */
  private writeWord(type: number, streamId: number, word: number): void {
    if (this.isClosed) return;
    this.output.frameWithWord(type, streamId, word);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.isFlushScheduled) return;
    if (this.isReading) {
      this.scheduleFlushAfterRead();
      return;
    }
    this.isFlushScheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * What a read wrote (a PING or SETTINGS acknowledgement, window updates) leaves in the next turn
   * of the loop, after the work its requests queued for this one (their handlers propose a few
   * promise steps later, and the server takes the batch in this turn's check phase): a write's
   * Ready reaches the disk first, and its answer, when ready by then, leaves in the same socket
   * write as the acknowledgements. Any other output meanwhile is flushed as usual, and takes them.
   */
  private scheduleFlushAfterRead(): void {
    if (this.isFlushAfterReadScheduled) return;
    this.isFlushAfterReadScheduled = true;
    setImmediate(() => setImmediate(() => {
      this.isFlushAfterReadScheduled = false;
      if (!this.isFlushScheduled) this.flush();
    }));
  }

  private flush(): void {
    this.isFlushScheduled = false;
    if (this.output.isEmpty) return;
    const pieces = this.output.take();
    const callbacks = this.outCallbacks;
    this.outCallbacks = [];
    const socket = this.socket;
    if (!socket.destroyed) {
      if (pieces.length === 1) {
        socket.write(pieces[0] as Buffer);
      } else {
        socket.cork();
        for (const piece of pieces) socket.write(piece);
        socket.uncork();
      }
    }
    for (const callback of callbacks) callback();
  }

  /** Whether stream data should wait rather than grow the socket's buffer. */
  isSocketCongested(): boolean {
    return this.socket.writableLength > SOCKET_BUFFER_BYTES_MAX;
  }

  /** Called by a stream that has data it cannot send yet. */
  block(stream: H2ServerStream): void {
    this.blocked.add(stream);
  }

  /** Sends what the windows now allow, streams in the order they blocked. */
  private drainBlocked(): void {
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0 || this.isSocketCongested()) return;
      if (stream.sendQueued()) this.blocked.delete(stream);
    }
  }

  /** A stream ended (answered, reset by either side): it leaves the table. */
  forget(stream: H2ServerStream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    if (this.isGoingAway && this.streams.size === 0 && !this.isClosed) {
      this.flush();
      this.socket.end();
    }
  }

  /** Writes a DATA frame sequence for `payload` (the caller checked the windows). */
  writeDataFrames(streamId: number, payload: Buffer, endStream: boolean, callback?: () => void): void {
    const maxPayload = this.peer.maxFramePayload;
    if (payload.length <= maxPayload) {
      this.writeFrame(FRAME.data, endStream ? FLAGS.endStream : 0, streamId, payload, callback);
      return;
    }
    for (let at = 0; at < payload.length; at += maxPayload) {
      const end = Math.min(payload.length, at + maxPayload);
      const isLast = end === payload.length;
      this.writeFrame(FRAME.data, isLast && endStream ? FLAGS.endStream : 0, streamId, payload.subarray(at, end), isLast ? callback : undefined);
    }
  }

  /**
   * Writes one DATA frame of a 5-byte message prefix and `message` (gRPC's framing) if it fits
   * the client's frame size; false when the caller must send the prefixed bytes as data instead.
   * The caller checked the windows for the 5 + message bytes.
   */
  writeLengthPrefixedFrame(streamId: number, message: Buffer, callback?: () => void): boolean {
    if (this.isClosed) return true;
    if (5 + message.length > this.peer.maxFramePayload) return false;
    this.output.lengthPrefixedFrame(FRAME.data, 0, streamId, message, this.peer.maxFramePayload);
    if (callback !== undefined) this.outCallbacks.push(callback);
    this.scheduleFlush();
    return true;
  }

  /** Runs `callback` once what is written so far has been handed to the socket. */
  afterFlush(callback: () => void): void {
    this.outCallbacks.push(callback);
    this.scheduleFlush();
  }

  /** As writeLengthPrefixedFrame, for a message given as parts `bytes` long in all. */
  writeLengthPrefixedParts(streamId: number, parts: readonly Buffer[], bytes: number): boolean {
    if (this.isClosed) return true;
    if (5 + bytes > this.peer.maxFramePayload) return false;
    this.output.lengthPrefixedParts(FRAME.data, 0, streamId, parts, bytes, this.peer.maxFramePayload);
    this.scheduleFlush();
    return true;
  }

  /** A header block as HEADERS (+ CONTINUATION) frames within the client's frame size. */
  writeHeaderBlock(streamId: number, block: Buffer, endStream: boolean): void {
    const maxPayload = this.peer.maxFramePayload;
    const endStreamFlag = endStream ? FLAGS.endStream : 0;
    if (block.length <= maxPayload) {
      this.writeFrame(FRAME.headers, endStreamFlag | FLAGS.endHeaders, streamId, block);
      return;
    }
    for (let at = 0; at < block.length; at += maxPayload) {
      const end = Math.min(block.length, at + maxPayload);
      const type = at === 0 ? FRAME.headers : FRAME.continuation;
      const flags = (at === 0 ? endStreamFlag : 0) | (end === block.length ? FLAGS.endHeaders : 0);
      this.writeFrame(type, flags, streamId, block.subarray(at, end));
    }
  }

  resetStream(streamId: number, code: number): void {
    this.writeWord(FRAME.rstStream, streamId, code);
  }

  /** Gives back receive window of a stream whose input is not over. */
  grantStreamWindow(streamId: number, bytes: number): void {
    this.writeWord(FRAME.windowUpdate, streamId, bytes);
  }

  // ---- input --------------------------------------------------------------------------------

  private onBytes(chunk: Buffer): void {
    if (this.isClosed) return;
    let bytes = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      if (!this.isPrefaceRead) {
        if (bytes.length < CLIENT_PREFACE.length) {
          if (!CLIENT_PREFACE.subarray(0, bytes.length).equals(bytes)) throw new H2ConnectionError(ERROR_CODE.protocol, 'not an HTTP/2 client preface');
          this.pending = bytes;
          return;
        }
        if (!bytes.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)) throw new H2ConnectionError(ERROR_CODE.protocol, 'not an HTTP/2 client preface');
        this.isPrefaceRead = true;
        bytes = bytes.subarray(CLIENT_PREFACE.length);
      }
      this.isReading = true;
      const at = readFrames(bytes, this.isOpen, this.onFrame);
      this.pending = at === bytes.length ? EMPTY : bytes.subarray(at);
    } catch (err) {
      this.fail(err);
    } finally {
      this.isReading = false;
    }
  }

  private readonly isOpen = (): boolean => !this.isClosed;

  private readonly onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
    this.headerBlocks.checkOrder(type, streamId);
    switch (type) {
      case FRAME.data: this.onData(flags, streamId, payload); break;
      case FRAME.headers: case FRAME.continuation: this.onHeaderFrame(type, flags, streamId, payload); break;
      case FRAME.rstStream: this.onRstStream(streamId, payload); break;
      case FRAME.settings: this.onSettings(flags, streamId, payload); break;
      case FRAME.ping: this.onPing(flags, streamId, payload); break;
      case FRAME.goaway: this.onGoaway(streamId); break;
      case FRAME.windowUpdate: this.onWindowUpdate(streamId, payload); break;
      case FRAME.priority:
        if (streamId === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'PRIORITY on stream 0');
        break;
      case FRAME.pushPromise: throw new H2ConnectionError(ERROR_CODE.protocol, 'PUSH_PROMISE from a client');
      default: break; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  };

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'DATA on stream 0');
    if (streamId > this.lastStreamId) throw new H2ConnectionError(ERROR_CODE.protocol, 'DATA on an idle stream');
    // The connection's window counts every DATA frame, whatever became of its stream.
    this.receiveUnacked += payload.length;
    if (this.receiveUnacked > CONNECTION_RECEIVE_WINDOW_BYTES) throw new H2ConnectionError(ERROR_CODE.flowControl, 'connection window exceeded');
    if (this.receiveUnacked >= CONNECTION_RECEIVE_WINDOW_BYTES / 4) {
      this.writeWord(FRAME.windowUpdate, 0, this.receiveUnacked);
      this.receiveUnacked = 0;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined || stream.isInputEnded) return; // closed: late frames are dropped
    stream.received(payload.length, dataContent(flags, payload), (flags & FLAGS.endStream) !== 0);
  }

  /** HEADERS or CONTINUATION: a whole block goes on to onHeaderBlock. */
  private onHeaderFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (type === FRAME.headers && (streamId === 0 || streamId % 2 === 0)) throw new H2ConnectionError(ERROR_CODE.protocol, `HEADERS on stream ${streamId}`);
    const whole = this.headerBlocks.read(type, flags, streamId, payload);
    if (whole !== null) this.onHeaderBlock(whole.streamId, whole.headers, whole.endStream);
  }

  private onHeaderBlock(streamId: number, headers: HeaderList, endStream: boolean): void {
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      // Trailers from the client: gRPC sends none, but a trailer block ends the input.
      if (!endStream) throw new H2ConnectionError(ERROR_CODE.protocol, 'a second header block without END_STREAM');
      if (!existing.isInputEnded) existing.received(0, EMPTY, true);
      return;
    }
    if (streamId <= this.lastStreamId) throw new H2ConnectionError(ERROR_CODE.streamClosed, `HEADERS on closed stream ${streamId}`);
    this.lastStreamId = streamId;
    if (this.isGoingAway) return;
    const limit = this.options.maxConcurrentStreams;
    if (limit !== null && this.streams.size >= limit) {
      this.resetStream(streamId, ERROR_CODE.refusedStream);
      return;
    }
    const stream = new H2ServerStream(this, streamId, this.peer.initialWindow, STREAM_RECEIVE_WINDOW_BYTES);
    this.streams.set(streamId, stream);
    stream.attach(this.options.onStream(stream, headers));
    if (endStream) stream.received(0, EMPTY, true);
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ConnectionError(ERROR_CODE.frameSize, 'RST_STREAM of the wrong size');
    if (streamId === 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'RST_STREAM on stream 0');
    if (streamId > this.lastStreamId) throw new H2ConnectionError(ERROR_CODE.protocol, 'RST_STREAM on an idle stream');
    this.streams.get(streamId)?.resetByPeer();
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    const { isAck, windowDelta } = applySettings(flags, streamId, payload, this.peer);
    if (isAck) return;
    shiftStreamWindows(this.streams.values(), windowDelta);
    this.writeFrame(FRAME.settings, FLAGS.ack, 0, EMPTY);
    this.drainBlocked();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    checkPing(streamId, payload);
    if ((flags & FLAGS.ack) === 0) this.writeFrame(FRAME.ping, FLAGS.ack, 0, payload);
    else if (payload.equals(KEEPALIVE_PAYLOAD)) this.pingSentAt = 0;
  }

  private onGoaway(streamId: number): void {
    if (streamId !== 0) throw new H2ConnectionError(ERROR_CODE.protocol, 'GOAWAY on a stream');
    // The client opens no more streams; those open are answered, then the connection ends.
    this.isGoingAway = true;
    if (this.streams.size === 0) {
      this.flush();
      this.socket.end();
    }
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    const increment = windowIncrement(payload);
    if (streamId === 0) {
      this.sendWindow = connectionWindowAfter(this.sendWindow, increment);
      this.drainBlocked();
      return;
    }
    if (streamId > this.lastStreamId) throw new H2ConnectionError(ERROR_CODE.protocol, 'WINDOW_UPDATE on an idle stream');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0 || stream.sendWindow + increment > WINDOW_BYTES_MAX) {
      stream.failByConnection(increment === 0 ? ERROR_CODE.protocol : ERROR_CODE.flowControl);
      return;
    }
    stream.sendWindow += increment;
    if (this.blocked.has(stream) && stream.sendQueued()) this.blocked.delete(stream);
  }

  // ---- ending -------------------------------------------------------------------------------

  private fail(err: unknown): void {
    const isClients = err instanceof H2ConnectionError;
    const code = isClients ? err.code : ERROR_CODE.internal;
    const message = err instanceof Error ? err.message : String(err);
    // The client's protocol errors are its own business; anything else thrown while reading is
    // ours (a handler's bug), and the connection it ended is worth an error line.
    if (isClients) this.options.log.debug({ err: message, code, remote: this.socket.remoteAddress }, 'HTTP/2 connection error');
    else this.options.log.error({ err, remote: this.socket.remoteAddress }, 'failed serving an HTTP/2 connection; closing it');
    this.enqueue(goawayFrame(this.lastStreamId, code, message));
    this.flush();
    this.socket.end();
    this.onSocketClosed();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onSocketClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.output = new OutputBuffer();
    this.outCallbacks = [];
    const open = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    for (const stream of open) stream.resetByPeer();
  }
}
