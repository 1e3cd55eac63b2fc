import { ByteQueue } from './byte-queue.js';
import { ERROR_CODE } from './h2-protocol.js';
import type { H2ServerConnection, H2StreamHandler } from './h2-server-connection.js';

/** Queued data goes out in DATA frames of at most this many bytes (and the client's frame size). */
const RUN_BYTES_MAX = 64 * 1024;

/**
 * One request stream on the server side: its flow-control windows, the data it waits to send,
 * and how it ends. An answer is headers, data, then a trailer block with END_STREAM; a stream
 * whose client has not half-closed by then is reset with NO_ERROR, as grpc-go's server does, so
 * the client stops sending.
 */
export class H2ServerStream {
  private handler: H2StreamHandler | null = null;
  /** Data waiting for window, and the write callbacks waiting for it (by the queue's byte count). */
  private readonly pending = new ByteQueue();
  private waiting: { readonly end: number; readonly callback: () => void }[] = [];
  /** Each called once, when the queued bytes fall below its mark (writers waiting for room). */
  private lowWaters: { readonly bytes: number; readonly listener: () => void }[] = [];
  /** The trailer block to send once the queue has drained. */
  private pendingTrailers: Buffer | null = null;
  private receiveUnacked = 0;
  isInputEnded = false;
  /** We sent END_STREAM or RST_STREAM, or the client reset it: nothing more goes out. */
  isOutputEnded = false;
  headersSent = false;

  constructor(
    private readonly connection: H2ServerConnection,
    readonly id: number,
    public sendWindow: number,
    private readonly receiveWindow: number,
  ) {}

  /** DATA payload bytes queued for window (not yet framed). */
  get queuedBytes(): number {
    return this.pending.length;
  }

  attach(handler: H2StreamHandler): void {
    this.handler = handler;
  }

  /** The socket this stream arrived on (peer address, TLS details). */
  get socket(): H2ServerConnection['socket'] {
    return this.connection.socket;
  }

  // ---- input (from the connection) ----------------------------------------------------------

  received(frameBytes: number, content: Buffer, endStream: boolean): void {
    this.receiveUnacked += frameBytes;
    if (this.receiveUnacked > this.receiveWindow) {
      this.failByConnection(ERROR_CODE.flowControl);
      return;
    }
    if (content.length > 0) this.handler?.onData(content);
    if (endStream) {
      this.isInputEnded = true;
      this.handler?.onEndOfInput();
      return;
    }
    if (this.receiveUnacked >= this.receiveWindow / 2 && !this.isOutputEnded) {
      this.connection.grantStreamWindow(this.id, this.receiveUnacked);
      this.receiveUnacked = 0;
    }
  }

  /** RST_STREAM from the client, or the connection is gone. */
  resetByPeer(): void {
    const wasOpen = !this.isOutputEnded;
    this.isOutputEnded = true;
    this.isInputEnded = true;
    this.dropQueue();
    this.connection.forget(this);
    if (wasOpen) this.handler?.onReset();
  }

  /** A stream-level protocol error of the client's: reset the stream with `code`. */
  failByConnection(code: number): void {
    if (!this.isOutputEnded) this.connection.resetStream(this.id, code);
    this.resetByPeer();
  }

  // ---- output (from the layer above) --------------------------------------------------------

  sendHeaders(block: Buffer, endStream: boolean): void {
    if (this.isOutputEnded) return;
    this.headersSent = true;
    this.connection.writeHeaderBlock(this.id, block, endStream);
    if (endStream) this.finishOutput();
  }

  /**
   * Sends `payload` as DATA when the windows allow, else queues it; `callback` runs when it has
   * been handed to the socket. Returns the bytes still queued on this stream.
   */
  sendData(payload: Buffer, callback?: () => void): number {
    if (this.isOutputEnded) return 0;
    if (this.hasRoomNow(payload.length)) {
      this.spend(payload.length);
      this.connection.writeDataFrames(this.id, payload, false, callback);
      return 0;
    }
    return this.enqueue([payload], payload.length, false, callback);
  }

  /** Whether `length` bytes may go out now: nothing queued ahead, window and socket room. */
  private hasRoomNow(length: number): boolean {
    const connection = this.connection;
    return this.queuedBytes === 0 && length <= this.sendWindow && length <= connection.sendWindow && !connection.isSocketCongested();
  }

  /** Takes `length` bytes from the stream's and the connection's send windows. */
  private spend(length: number): void {
    this.sendWindow -= length;
    this.connection.sendWindow -= length;
  }

  /** Queues a payload given as parts (`bytes` long), then sends what the windows allow. */
  private enqueue(parts: readonly Buffer[], bytes: number, isMessage: boolean, callback: (() => void) | undefined): number {
    this.pending.pushParts(parts, bytes, isMessage);
    if (callback !== undefined) this.waiting.push({ end: this.pending.pushedTotal, callback });
    if (!this.sendQueued()) this.connection.block(this);
    return this.pending.length;
  }

  /**
   * Sends a DATA payload of gRPC's 5-byte prefix and `message`, written into the connection's
   * output in place when the windows allow; otherwise as sendData of the prefixed bytes.
   */
  sendLengthPrefixed(message: Buffer, callback?: () => void): number {
    if (this.isOutputEnded) return 0;
    const length = 5 + message.length;
    if (this.hasRoomNow(length) && this.connection.writeLengthPrefixedFrame(this.id, message, callback)) {
      this.spend(length);
      return 0;
    }
    return this.enqueue([message], message.length, true, callback);
  }

  /** Calls `listener` once the queued bytes are below `bytes` (now, if they are). */
  whenQueueBelow(bytes: number, listener: () => void): void {
    this.lowWaters.push({ bytes, listener });
    this.checkLowWater();
  }

  private checkLowWater(): void {
    if (this.lowWaters.length === 0) return;
    const queued = this.queuedBytes;
    const due = this.lowWaters.filter((mark) => queued < mark.bytes);
    if (due.length === 0) return;
    this.lowWaters = this.lowWaters.filter((mark) => queued >= mark.bytes);
    // After the frames just written are handed to the socket, as a write callback would be.
    for (const mark of due) setImmediate(mark.listener);
  }

  /** As sendLengthPrefixed, for a message given as parts `bytes` long in all (never joined). */
  sendLengthPrefixedParts(parts: readonly Buffer[], bytes: number): number {
    if (this.isOutputEnded) return 0;
    if (this.hasRoomNow(5 + bytes) && this.connection.writeLengthPrefixedParts(this.id, parts, bytes)) {
      this.spend(5 + bytes);
      return 0;
    }
    return this.enqueue(parts, bytes, true, undefined);
  }

  /** Ends the answer with a trailer block (END_STREAM) once the queued data is out. */
  sendTrailers(block: Buffer): void {
    if (this.isOutputEnded || this.pendingTrailers !== null) return;
    if (this.queuedBytes > 0) {
      this.pendingTrailers = block;
      return;
    }
    this.connection.writeHeaderBlock(this.id, block, true);
    this.finishOutput();
  }

  /** Resets the stream from our side (the answer is abandoned). */
  reset(code: number): void {
    if (this.isOutputEnded) return;
    this.connection.resetStream(this.id, code);
    this.isOutputEnded = true;
    this.isInputEnded = true;
    this.dropQueue();
    this.connection.forget(this);
  }

  /** Sends queued data as far as the windows allow; true when the queue is empty. */
  sendQueued(): boolean {
    const connection = this.connection;
    const pending = this.pending;
    while (pending.length > 0) {
      const room = Math.min(this.sendWindow, connection.sendWindow);
      if (room <= 0 || connection.isSocketCongested()) return false;
      const chunk = pending.take(Math.min(room, connection.peerMaxFramePayload, RUN_BYTES_MAX));
      connection.writeDataFrames(this.id, chunk, false);
      this.spend(chunk.length);
      while (this.waiting.length > 0 && (this.waiting[0] as { end: number }).end <= pending.takenTotal) {
        connection.afterFlush((this.waiting.shift() as { callback: () => void }).callback);
      }
      this.checkLowWater();
    }
    if (this.pendingTrailers !== null) {
      const trailers = this.pendingTrailers;
      this.pendingTrailers = null;
      connection.writeHeaderBlock(this.id, trailers, true);
      this.finishOutput();
    }
    return true;
  }

  private finishOutput(): void {
    this.isOutputEnded = true;
    if (!this.isInputEnded) {
      this.connection.resetStream(this.id, ERROR_CODE.noError);
      this.isInputEnded = true;
    }
    this.connection.forget(this);
  }

  private dropQueue(): void {
    this.pending.clear();
    this.waiting = [];
    this.lowWaters = [];
    this.pendingTrailers = null;
  }
}
