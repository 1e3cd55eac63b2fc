import { EventEmitter } from 'node:events';
import { TLSSocket } from 'node:tls';
import { status, type Metadata, type MethodDefinition, type ServiceError } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { H2ServerStream } from '../h2/h2-server-stream.js';
import { OK_TRAILERS_BLOCK, RESPONSE_HEADERS_BLOCK, statusBlock } from './grpc-wire.js';

/** Above this many bytes queued on a stream, write() returns false until 'drain'. */
const WRITE_QUEUE_BYTES_HIGH = 256 * 1024;

/** What a handler or the transport ends a call with. */
export type CallStatus = Pick<ServiceError, 'code' | 'details'>;

/** The status an error object carries (grpc-js's shape: code and details), else UNKNOWN. */
export function statusOf(err: unknown): CallStatus {
  const value = err as { code?: unknown; details?: unknown; message?: unknown } | null | undefined;
  const code = typeof value?.code === 'number' ? value.code : status.UNKNOWN;
  const details = typeof value?.details === 'string'
    ? value.details
    : typeof value?.message === 'string' ? value.message : '';
  return { code, details };
}

/**
 * A call as etcron's handlers see it: the surface of grpc-js's server call objects they use
 * (request, metadata, peer, deadline, cancellation; write/end and the 'data', 'end', 'error',
 * 'cancelled', 'drain', 'finish' and 'close' events for streams), over our HTTP/2 stream.
 *
 * A handler ends a stream with an error status by emitting 'error', as with grpc-js.
 */
export class ServerCall extends EventEmitter {
  request: unknown = undefined;
  cancelled = false;
  destroyed = false;
  private isFinished = false;
  private needsDrain = false;

  constructor(
    private readonly stream: H2ServerStream,
    private readonly method: MethodDefinition<unknown, unknown>,
    readonly metadata: Metadata,
    private readonly deadline: number,
    private readonly host: string,
  ) {
    super();
    this.on('error', (err: unknown) => this.finish(statusOf(err)));
  }

  getPeer(): string {
    const socket = this.stream.socket;
    return socket.remotePort === undefined ? (socket.remoteAddress ?? 'unknown') : `${socket.remoteAddress}:${socket.remotePort}`;
  }

  getDeadline(): number {
    return this.deadline;
  }

  getPath(): string {
    return this.method.path;
  }

  getHost(): string {
    return this.host;
  }

  /** As grpc-js: the peer certificate only over TLS, and only once it was verified. */
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } {
    const socket = this.stream.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return certificate.raw === undefined ? { transportSecurityType: 'ssl' } : { transportSecurityType: 'ssl', sslPeerCertificate: certificate };
  }

  sendMetadata(): void {}

  /** Whether the answer is over (sent, failed or cancelled). */
  get isDone(): boolean {
    return this.isFinished;
  }

  /** The whole answer of a unary call: headers, the message and OK trailers, in one write. */
  answer(value: unknown): void {
    if (this.isFinished) return;
    const bytes = this.serialize(value);
    if (bytes === null) return;
    this.isFinished = true;
    const stream = this.stream;
    stream.sendHeaders(RESPONSE_HEADERS_BLOCK, false);
    stream.sendLengthPrefixed(bytes);
    stream.sendTrailers(OK_TRAILERS_BLOCK);
    this.closed();
  }

  /** Bytes written and still queued for the client's flow-control window (as a Writable's). */
  get writableLength(): number {
    return this.stream.queuedBytes;
  }

  /** Calls `listener` once fewer than `bytes` are queued (a writer that stopped for room). */
  onceWritableBelow(bytes: number, listener: () => void): void {
    this.stream.whenQueueBelow(bytes, listener);
  }

  /**
   * A stream's next message already encoded, as parts written one after the other (a watch
   * response: its header, watch ID and events fields), so they need not be joined first.
   */
  writeParts(parts: readonly Buffer[]): boolean {
    if (this.isFinished) return false;
    const stream = this.streamWithHeaders();
    let bytes = 0;
    for (const part of parts) bytes += part.length;
    return this.afterWrite(stream.sendLengthPrefixedParts(parts, bytes));
  }

  /** A stream's next message; false when the caller should wait for 'drain'. */
  write(value: unknown, callback?: (err?: Error | null) => void): boolean {
    if (this.isFinished) {
      if (callback !== undefined) process.nextTick(callback);
      return false;
    }
    const bytes = this.serialize(value);
    if (bytes === null) return false;
    return this.afterWrite(this.streamWithHeaders().sendLengthPrefixed(bytes, callback));
  }

  /** The response's encoding; null (and the call failed with INTERNAL, as grpc-go) if it has none. */
  private serialize(value: unknown): Buffer | null {
    try {
      return this.method.responseSerialize(value);
    } catch (err) {
      this.finish({ code: status.INTERNAL, details: `grpc: error while marshaling: ${statusOf(err).details}` });
      return null;
    }
  }

  /** The stream, its response headers sent (once, before the first message). */
  private streamWithHeaders(): H2ServerStream {
    const stream = this.stream;
    if (!stream.headersSent) stream.sendHeaders(RESPONSE_HEADERS_BLOCK, false);
    return stream;
  }

  /** Whether a writer may go on, given the bytes now queued; if not, 'drain' says when. */
  private afterWrite(queued: number): boolean {
    if (queued < WRITE_QUEUE_BYTES_HIGH) return true;
    const stream = this.stream;
    if (!this.needsDrain) {
      this.needsDrain = true;
      stream.whenQueueBelow(WRITE_QUEUE_BYTES_HIGH, () => {
        this.needsDrain = false;
        this.emit('drain');
      });
    }
    return false;
  }

  /** Ends a stream with OK once what was written is out. */
  end(): void {
    if (this.isFinished) return;
    this.finish({ code: status.OK, details: '' });
  }

  destroy(err?: unknown): void {
    this.destroyed = true;
    this.finish(err === undefined ? { code: status.CANCELLED, details: 'Cancelled' } : statusOf(err));
  }

  /** Ends the call with `callStatus` (trailers-only when nothing was sent yet). */
  finish(callStatus: CallStatus): void {
    if (this.isFinished) return;
    this.isFinished = true;
    const stream = this.stream;
    const isOk = callStatus.code === status.OK;
    if (isOk && stream.headersSent) stream.sendTrailers(OK_TRAILERS_BLOCK);
    else if (stream.headersSent) stream.sendTrailers(statusBlock(callStatus.code, callStatus.details ?? '', false));
    else stream.sendHeaders(statusBlock(callStatus.code, callStatus.details ?? '', true), true);
    if (isOk) this.emit('finish');
    this.closed();
  }

  /** The client reset the stream, the connection ended, or the deadline passed. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const wasFinished = this.isFinished;
    this.isFinished = true;
    this.emit('cancelled');
    if (!wasFinished) this.closed();
  }

  private closed(): void {
    if (this.listenerCount('close') > 0) this.emit('close');
  }
}
