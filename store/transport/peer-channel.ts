import { status } from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { CONNECTION_LOST, H2ClientConnection, type H2ClientStream, type H2ClientStreamHandler } from '../api/h2/h2-client-connection.js';
import { badCertificate } from '../tls/peer-identity.js';
import { ERROR_CODE } from '../api/h2/h2-protocol.js';
import type { HeaderList } from '../api/h2/hpack.js';
import type { Logger } from 'pino';

/** A failed peer call: a gRPC status code and its message, as the server or the transport gave them. */
export class PeerCallError extends Error {
  override readonly name = 'PeerCallError';

  constructor(readonly code: status, readonly details: string) {
    super(`${code} ${status[code]}: ${details}`);
  }
}

export interface PeerChannelOptions {
  /** http://host:port or https://host:port. */
  readonly target: URL;
  /** For https targets: certificates and checks; null for the system's roots and usual checks. */
  readonly tls: ConnectionOptions | null;
  /**
   * For https targets, after the handshake: why the server's certificate is refused, or null. For
   * checks Node makes only of verified certificates (checkServerIdentity), on links that verify none.
   */
  readonly refuseServer?: ((cert: PeerCertificate) => string | null) | null;
  readonly keepalive: { readonly intervalMs: number; readonly timeoutMs: number } | null;
  /** Waits between connection attempts: from initialMs, doubling after each failure up to maxMs. */
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly log: Logger;
}

/**
 * A connection lost after this long was a working one: the next dial is at once and the backoff
 * starts over. One lost sooner (a peer that accepts and drops) counts as a failed attempt.
 */
const HEALTHY_CONNECTION_MS = 1_000;

/** Unsent bytes of a call above which write() asks the writer to wait for 'drain'. */
const CALL_HIGH_WATER_BYTES = 1 << 20;
/** Messages up to this size are sent in one piece with their prefix (one copy, one frame). */
const JOIN_BYTES_MAX = 16 * 1024;

/** gRPC's code for an HTTP status without grpc-status (as gRPC's HTTP mapping). */
function codeOfHttpStatus(httpStatus: number): status {
  switch (httpStatus) {
    case 400: return status.INTERNAL;
    case 401: return status.UNAUTHENTICATED;
    case 403: return status.PERMISSION_DENIED;
    case 404: return status.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return status.UNAVAILABLE;
    default: return status.UNKNOWN;
  }
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** gRPC's 5-byte message prefix (not compressed, then the length), with room for `room` bytes after it. */
function messagePrefix(length: number, room = 0): Buffer {
  const prefix = Buffer.allocUnsafe(5 + room);
  prefix[0] = 0;
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

/**
 * One gRPC call to a peer: a client stream (Raft messages, snapshot chunks) or, with `unary`, a
 * single request. Emits 'drain' after write() returned false and the backlog left, and 'error'
 * (when listened to) before `done` reports a failure.
 */
export class PeerCall extends EventEmitter implements H2ClientStreamHandler {
  private stream: H2ClientStream | null = null;
  /** Writes made before the stream opened. */
  private early: { message: Buffer; callback: ((err?: Error) => void) | null }[] = [];
  private isEndRequested = false;
  private isFinished = false;
  private needsDrain = false;
  private unsentBytes = 0;
  private readonly unsentCallbacks = new Set<(err?: Error) => void>();
  private responseHeaders: HeaderList | null = null;
  private readonly responseChunks: Buffer[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() by which the call gives up; null for none. */
  readonly deadlineMs: number | null;

  constructor(
    readonly path: string,
    private readonly done: (err: PeerCallError | null, response: Buffer | null) => void,
    timeoutMs: number | null,
  ) {
    super();
    this.deadlineMs = timeoutMs === null ? null : performance.now() + timeoutMs;
    if (timeoutMs !== null) {
      this.timer = setTimeout(() => this.abandon(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), Math.max(0, timeoutMs));
      this.timer.unref();
    }
  }

  /** Called by the channel with the stream it opened for this call. */
  opened(stream: H2ClientStream): void {
    if (this.isFinished) {
      stream.reset(ERROR_CODE.cancel);
      return;
    }
    this.stream = stream;
    const early = this.early;
    this.early = [];
    for (const { message, callback } of early) this.send(message, callback);
    if (this.isEndRequested) stream.end();
  }

  /** Sends one message; false when the backlog is large enough that the writer should wait for 'drain'. */
  write(message: Buffer, callback?: (err?: Error) => void): boolean {
    if (this.isFinished || this.isEndRequested) {
      callback?.(new Error('write after the call ended'));
      return false;
    }
    this.unsentBytes += message.length;
    if (this.stream === null) this.early.push({ message, callback: callback ?? null });
    else this.send(message, callback ?? null);
    const isBelow = this.unsentBytes < CALL_HIGH_WATER_BYTES;
    if (!isBelow) this.needsDrain = true;
    return isBelow;
  }

  private send(message: Buffer, callback: ((err?: Error) => void) | null): void {
    const stream = this.stream as H2ClientStream;
    if (callback !== null) this.unsentCallbacks.add(callback);
    const sent = (): void => {
      this.unsentBytes -= message.length;
      if (callback !== null && this.unsentCallbacks.delete(callback)) callback();
      if (this.needsDrain && this.unsentBytes < CALL_HIGH_WATER_BYTES) {
        this.needsDrain = false;
        this.emit('drain');
      }
    };
    if (message.length <= JOIN_BYTES_MAX) {
      const framed = messagePrefix(message.length, message.length);
      framed.set(message, 5);
      stream.write(framed, sent);
      return;
    }
    stream.write(messagePrefix(message.length));
    stream.write(message, sent);
  }

  /** No more messages: the stream is half-closed once what was written has left. */
  end(): void {
    if (this.isEndRequested || this.isFinished) return;
    this.isEndRequested = true;
    this.stream?.end();
  }

  /** Gives up on the call: the server is told (RST_STREAM), `done` hears CANCELLED. */
  cancel(): void {
    this.abandon(status.CANCELLED, 'Cancelled on client');
  }

  private abandon(code: status, details: string): void {
    if (this.isFinished) return;
    this.stream?.reset(ERROR_CODE.cancel);
    this.finish(new PeerCallError(code, details), null);
  }

  /** Fails the call before it had a stream (the channel could not connect). */
  fail(err: PeerCallError): void {
    this.finish(err, null);
  }

  /** Whether the call is over (answered, failed or cancelled): writes go nowhere. */
  get isOver(): boolean {
    return this.isFinished;
  }

  /** Resolves once write() may be called again: the backlog drained, or the call is over. */
  whenWritable(): Promise<void> {
    if (this.isFinished || !this.needsDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const settle = (): void => {
        this.off('drain', settle);
        this.off('close', settle);
        resolve();
      };
      this.on('drain', settle);
      this.on('close', settle);
    });
  }

  // ---- H2ClientStreamHandler ----------------------------------------------------------------

  onHeaders(headers: HeaderList, endStream: boolean): void {
    if (this.responseHeaders === null) {
      this.responseHeaders = headers;
      if (endStream) this.settle(headers); // trailers-only
      return;
    }
    if (!endStream) {
      this.abandon(status.INTERNAL, 'a second header block that does not end the call');
      return;
    }
    this.settle(headers);
  }

  onData(content: Buffer, endStream: boolean): void {
    if (content.length > 0) this.responseChunks.push(content);
    if (endStream) this.finish(new PeerCallError(status.INTERNAL, 'the server ended the call without a status'), null);
  }

  onReset(code: number, reason: string): void {
    const grpcCode = code === CONNECTION_LOST || code === ERROR_CODE.refusedStream ? status.UNAVAILABLE
      : code === ERROR_CODE.cancel ? status.CANCELLED : status.INTERNAL;
    this.finish(new PeerCallError(grpcCode, reason), null);
  }

  /** The call's status from the trailers (or a trailers-only answer), and its one response. */
  private settle(trailers: HeaderList): void {
    const all = this.responseHeaders === trailers ? trailers : [...(this.responseHeaders ?? []), ...trailers];
    const value = (name: string): string | undefined => all.find(([n]) => n === name)?.[1];
    const httpStatus = Number(value(':status') ?? '0');
    const grpcStatus = value('grpc-status');
    if (grpcStatus === undefined) {
      this.finish(new PeerCallError(httpStatus === 200 ? status.INTERNAL : codeOfHttpStatus(httpStatus),
        httpStatus === 200 ? 'the server ended the call without grpc-status' : `HTTP status ${httpStatus}`), null);
      return;
    }
    const code = Number(grpcStatus) as status;
    if (code !== status.OK) {
      this.finish(new PeerCallError(code, percentDecode(value('grpc-message') ?? '')), null);
      return;
    }
    const body = this.responseChunks.length === 1 ? this.responseChunks[0] as Buffer : Buffer.concat(this.responseChunks);
    if (body.length === 0) {
      this.finish(null, null);
      return;
    }
    const length = body.length >= 5 ? body.readUInt32BE(1) : -1;
    if (length < 0 || body[0] !== 0 || body.length < 5 + length) {
      this.finish(new PeerCallError(status.INTERNAL, 'malformed response message'), null);
      return;
    }
    this.finish(null, body.subarray(5, 5 + length));
  }

  private finish(err: PeerCallError | null, response: Buffer | null): void {
    if (this.isFinished) return;
    this.isFinished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.stream = null;
    // Messages that never left are reported as not sent, whatever the outcome.
    const unsent = [...this.unsentCallbacks, ...this.early.flatMap((w) => (w.callback === null ? [] : [w.callback]))];
    this.unsentCallbacks.clear();
    this.early = [];
    const notSent = err ?? new PeerCallError(status.CANCELLED, 'the call ended before the message was sent');
    for (const callback of unsent) callback(notSent);
    if (err !== null && this.listenerCount('error') > 0) this.emit('error', err);
    this.emit('close');
    this.done(err, response);
  }
}

/**
 * A connection to one peer's gRPC port, kept up while the channel lives: dialled at once, dialled
 * again after a loss (at once if it had been up, else after a backoff that doubles to a limit),
 * with keepalive pings both ways. Calls made while a dial is under way wait for it; calls made
 * between dials fail at once with UNAVAILABLE and the last connection error, so a caller (Raft)
 * learns a peer is unreachable without waiting.
 */
export class PeerChannel {
  private connection: H2ClientConnection | null = null;
  /** The connection being dialled (not ready yet); null when no dial is under way. */
  private dialling: H2ClientConnection | null = null;
  private waiting: PeerCall[] = [];
  private lastError = 'not connected yet';
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private isClosed = false;
  /** When the current connection became usable (performance.now()); null while there is none. */
  activeSinceMs: number | null = null;

  constructor(private readonly options: PeerChannelOptions) {
    this.backoffMs = options.backoff.initialMs;
    this.dial();
  }

  /** A client stream on `path`; `done` gets the status and the server's one response. */
  clientStream(path: string, done: (err: PeerCallError | null, response: Buffer | null) => void): PeerCall {
    const call = new PeerCall(path, done, null);
    this.start(call);
    return call;
  }

  /** One request, one response, within `timeoutMs`. */
  unary(path: string, request: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const call = new PeerCall(path, (err, response) => {
        if (err !== null) reject(err);
        else if (response === null) reject(new PeerCallError(status.INTERNAL, 'empty answer'));
        else resolve(response);
      }, timeoutMs);
      call.write(request);
      call.end();
      this.start(call);
    });
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const waiting = this.waiting;
    this.waiting = [];
    for (const call of waiting) call.fail(new PeerCallError(status.UNAVAILABLE, 'channel closed'));
    this.dialling?.destroy('channel closed');
    this.dialling = null;
    this.connection?.close();
    this.connection = null;
    this.activeSinceMs = null;
  }

  private start(call: PeerCall): void {
    if (this.isClosed) {
      process.nextTick(() => call.fail(new PeerCallError(status.UNAVAILABLE, 'channel closed')));
      return;
    }
    const connection = this.connection;
    if (connection !== null && connection.isUsable) {
      this.open(connection, call);
      return;
    }
    if (connection !== null && this.dialling === null) {
      // Up but taking no new stream (its stream ids are used up): the next connection takes over.
      this.connection = null;
      this.activeSinceMs = null;
      connection.close('stream ids used up');
      this.dial();
    }
    if (this.dialling !== null) {
      this.waiting.push(call);
      return;
    }
    // Never from inside clientStream(): its caller holds the call only once it returns.
    const error = new PeerCallError(status.UNAVAILABLE, `No connection established. Last error: ${this.lastError}`);
    process.nextTick(() => call.fail(error));
  }

  private open(connection: H2ClientConnection, call: PeerCall): void {
    const target = this.options.target;
    const headers: HeaderList = [
      [':method', 'POST'], [':scheme', target.protocol === 'https:' ? 'https' : 'http'], [':path', call.path],
      [':authority', target.host], ['content-type', 'application/grpc'], ['te', 'trailers'], ['user-agent', 'etcron-peer'],
    ];
    if (call.deadlineMs !== null) headers.push(['grpc-timeout', `${Math.max(1, Math.ceil(call.deadlineMs - performance.now()))}m`]);
    // Headers and a unary call's request leave in one socket write.
    connection.batch(() => call.opened(connection.openStream(headers, call)));
  }

  private dial(): void {
    if (this.isClosed) return;
    this.retryTimer = null;
    const { target, tls, keepalive } = this.options;
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
    let socket: Socket;
    if (target.protocol === 'https:') {
      const secure = tlsConnect({ ...tls, host, port, ALPNProtocols: ['h2'], ...(isIP(host) === 0 ? { servername: host } : {}) });
      const refuseServer = this.options.refuseServer ?? null;
      if (refuseServer !== null) {
        secure.once('secureConnect', () => {
          const refusal = refuseServer(secure.getPeerCertificate());
          if (refusal !== null) secure.destroy(new Error(badCertificate(refusal)));
        });
      }
      socket = secure;
    } else {
      socket = netConnect({ host, port });
    }
    socket.setNoDelay(true);
    let socketError: string | null = null;
    socket.on('error', (err: Error) => {
      socketError ??= err.message;
    });
    let readyAt: number | null = null;
    const connection: H2ClientConnection = new H2ClientConnection(socket, {
      keepalive,
      onReady: () => {
        readyAt = performance.now();
        this.dialling = null;
        if (this.isClosed) {
          connection.close();
          return;
        }
        this.connection = connection;
        this.activeSinceMs = readyAt;
        const waiting = this.waiting;
        this.waiting = [];
        for (const call of waiting) this.start(call);
      },
      onGoaway: () => {
        // The server takes no new streams here: later calls go to a new connection.
        if (this.connection !== connection) return;
        this.connection = null;
        this.activeSinceMs = null;
        if (this.dialling === null) this.dial();
      },
      onClosed: (reason) => {
        this.lastError = socketError ?? reason;
        if (this.connection === connection) {
          this.connection = null;
          this.activeSinceMs = null;
        }
        if (readyAt === null) {
          if (this.dialling === connection) this.dialling = null;
          const waiting = this.waiting;
          this.waiting = [];
          for (const call of waiting) call.fail(new PeerCallError(status.UNAVAILABLE, `No connection established. Last error: ${this.lastError}`));
        }
        if (this.isClosed || this.dialling !== null || this.connection !== null || this.retryTimer !== null) return;
        const wasHealthy = readyAt !== null && performance.now() - readyAt >= HEALTHY_CONNECTION_MS;
        if (wasHealthy) this.backoffMs = this.options.backoff.initialMs;
        const delayMs = wasHealthy ? 0 : this.backoffMs;
        if (!wasHealthy) this.backoffMs = Math.min(this.options.backoff.maxMs, this.backoffMs * 2);
        this.retryTimer = setTimeout(() => this.dial(), delayMs);
        this.retryTimer.unref();
      },
      onInternalError: (err) => this.options.log.error({ err, peer: target.host }, 'failed handling a peer connection; closing it'),
    });
    this.dialling = connection;
  }
}
