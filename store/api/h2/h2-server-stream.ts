import { ERROR_CODE } from './h2-protocol.js';
import type { H2ServerConnection, H2StreamHandler } from './h2-server-connection.js';

/** Data waiting for window: raw bytes, or a message still to get gRPC's 5-byte prefix. */
export interface QueuedData {
  bytes: Buffer;
  isMessage: boolean;
  readonly callback: (() => void) | undefined;
}

/** The DATA payload bytes an entry takes. */
export function wireBytes(entry: QueuedData): number {
  return entry.isMessage ? 5 + entry.bytes.length : entry.bytes.length;
}

/** A run of queued entries goes out as one DATA frame of at most this many bytes. */
const RUN_BYTES_MAX = 64 * 1024;

/**
 * One request stream on the server side: its flow-control windows, the data it waits to send,
 * and how it ends. An answer is headers, data, then a trailer block with END_STREAM; a stream
 * whose client has not half-closed by then is reset with NO_ERROR, as grpc-go's server does, so
 * the client stops sending.
 */
export class H2ServerStream {
  private handler: H2StreamHandler | null = null;
  private queue: QueuedData[] = [];
  /** The first entry of `queue` not sent yet (entries before it are sent). */
  private queueHead = 0;
  /** DATA payload bytes in `queue` (not yet framed). */
  queuedBytes = 0;
  /** Called once, when the queued bytes fall below `lowWaterBytes` (a writer waiting for drain). */
  private lowWater: { readonly bytes: number; readonly listener: () => void } | null = null;
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
    const connection = this.connection;
    const length = payload.length;
    if (this.queuedBytes === 0 && length <= this.sendWindow && length <= connection.sendWindow && !connection.isSocketCongested()) {
      this.sendWindow -= length;
      connection.sendWindow -= length;
      connection.writeDataFrames(this.id, payload, false, callback);
      return 0;
    }
    return this.enqueue({ bytes: payload, isMessage: false, callback });
  }

  private enqueue(entry: QueuedData): number {
    this.queue.push(entry);
    this.queuedBytes += wireBytes(entry);
    if (!this.sendQueued()) this.connection.block(this);
    return this.queuedBytes;
  }

  /**
   * Sends a DATA payload of gRPC's 5-byte prefix and `message`, written into the connection's
   * output in place when the windows allow; otherwise as sendData of the prefixed bytes.
   */
  sendLengthPrefixed(message: Buffer, callback?: () => void): number {
    if (this.isOutputEnded) return 0;
    const connection = this.connection;
    const length = 5 + message.length;
    if (this.queuedBytes === 0 && length <= this.sendWindow && length <= connection.sendWindow && !connection.isSocketCongested()
      && connection.writeLengthPrefixedFrame(this.id, message, callback)) {
      this.sendWindow -= length;
      connection.sendWindow -= length;
      return 0;
    }
    return this.enqueue({ bytes: message, isMessage: true, callback });
  }

  /** Calls `listener` once the queued bytes are below `bytes` (now, if they are). */
  whenQueueBelow(bytes: number, listener: () => void): void {
    this.lowWater = { bytes, listener };
    this.checkLowWater();
  }

  private checkLowWater(): void {
    const lowWater = this.lowWater;
    if (lowWater === null || this.queuedBytes >= lowWater.bytes) return;
    this.lowWater = null;
    // After the frames just written are handed to the socket, as a write callback would be.
    setImmediate(lowWater.listener);
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

  /**
   * Sends queued data as far as the windows allow; true when the queue is empty. Whole entries
   * that fit together go out as one DATA frame (as grpc-go packs a stream's messages); an entry
   * larger than the room goes out in parts.
   */
  sendQueued(): boolean {
    const connection = this.connection;
    const queue = this.queue;
    while (this.queueHead < queue.length) {
      const room = Math.min(this.sendWindow, connection.sendWindow);
      if (room <= 0 || connection.isSocketCongested()) {
        // Sent entries are dropped from the front now and then, not one shift() each.
        if (this.queueHead >= 1024 && this.queueHead * 2 >= queue.length) {
          this.queue = queue.slice(this.queueHead);
          this.queueHead = 0;
        }
        return false;
      }
      const limit = Math.min(room, connection.peerMaxFramePayload, RUN_BYTES_MAX);
      let end = this.queueHead;
      let total = 0;
      while (end < queue.length) {
        const bytes = wireBytes(queue[end] as QueuedData);
        if (total + bytes > limit) break;
        total += bytes;
        end++;
      }
      if (end > this.queueHead) {
        connection.writeDataRun(this.id, queue, this.queueHead, end, total);
        this.queueHead = end;
      } else {
        const head = queue[this.queueHead] as QueuedData;
        if (head.isMessage) {
          const prefixed = Buffer.allocUnsafe(5 + head.bytes.length);
          prefixed[0] = 0;
          prefixed.writeUInt32BE(head.bytes.length, 1);
          head.bytes.copy(prefixed, 5);
          head.bytes = prefixed;
          head.isMessage = false;
        }
        total = limit;
        connection.writeDataFrames(this.id, head.bytes.subarray(0, limit), false);
        head.bytes = head.bytes.subarray(limit);
      }
      this.sendWindow -= total;
      connection.sendWindow -= total;
      this.queuedBytes -= total;
      this.checkLowWater();
    }
    this.queue = [];
    this.queueHead = 0;
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
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.pendingTrailers = null;
  }
}
