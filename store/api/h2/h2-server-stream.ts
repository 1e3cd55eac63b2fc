import { ERROR_CODE } from './h2-protocol.js';
import type { H2ServerConnection, H2StreamHandler } from './h2-server-connection.js';

interface QueuedData {
  payload: Buffer;
  readonly callback: (() => void) | undefined;
}

/**
 * One request stream on the server side: its flow-control windows, the data it waits to send,
 * and how it ends. An answer is headers, data, then a trailer block with END_STREAM; a stream
 * whose client has not half-closed by then is reset with NO_ERROR, as grpc-go's server does, so
 * the client stops sending.
 */
export class H2ServerStream {
  private handler: H2StreamHandler | null = null;
  private readonly queue: QueuedData[] = [];
  /** Bytes of data in `queue` (not yet framed). */
  queuedBytes = 0;
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
    if (this.queue.length === 0 && length <= this.sendWindow && length <= connection.sendWindow && !connection.isSocketCongested()) {
      this.sendWindow -= length;
      connection.sendWindow -= length;
      connection.writeDataFrames(this.id, payload, false, callback);
      return 0;
    }
    this.queue.push({ payload, callback });
    this.queuedBytes += length;
    if (!this.sendQueued()) connection.block(this);
    return this.queuedBytes;
  }

  /** Ends the answer with a trailer block (END_STREAM) once the queued data is out. */
  sendTrailers(block: Buffer): void {
    if (this.isOutputEnded || this.pendingTrailers !== null) return;
    if (this.queue.length > 0) {
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
    while (this.queue.length > 0) {
      const room = Math.min(this.sendWindow, connection.sendWindow);
      if (room <= 0 || connection.isSocketCongested()) return false;
      const head = this.queue[0] as QueuedData;
      const part = head.payload.length <= room ? head.payload : head.payload.subarray(0, room);
      const isWhole = part.length === head.payload.length;
      this.sendWindow -= part.length;
      connection.sendWindow -= part.length;
      this.queuedBytes -= part.length;
      if (isWhole) this.queue.shift();
      else head.payload = head.payload.subarray(room);
      connection.writeDataFrames(this.id, part, false, isWhole ? head.callback : undefined);
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
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.pendingTrailers = null;
  }
}
