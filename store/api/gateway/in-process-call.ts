import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Metadata, status } from '@grpc/grpc-js';

/** grpc-gateway v1 passes these request headers on as gRPC metadata. */
const METADATA_HEADER_PREFIX = 'grpc-metadata-';

/**
 * What grpc-gateway forwards of an HTTP request: Authorization (etcd reads the token from it)
 * and every Grpc-Metadata-* header without its prefix.
 */
export function metadataOf(request: IncomingMessage): Metadata {
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    const key =
      name === 'authorization'
        ? name
        : name.startsWith(METADATA_HEADER_PREFIX)
          ? name.slice(METADATA_HEADER_PREFIX.length)
          : null;
    if (key === null || key === '' || key.endsWith('-bin')) continue;
    for (const item of Array.isArray(value) ? value : [value]) metadata.add(key, item);
  }
  return metadata;
}

/** Where a stream's answers go: each message, the clean end, or a failure with its gRPC code. */
export interface StreamSink {
  message(response: unknown): void;
  end(): void;
  fail(code: number, message: string): void;
}

/**
 * The part of grpc-js's server call objects etcron's handlers use, for a call that arrives as
 * JSON: request, metadata, peer, and cancellation when the HTTP client goes away.
 */
export class InProcessCall extends EventEmitter {
  cancelled = false;

  constructor(
    readonly request: unknown,
    readonly metadata: Metadata,
    private readonly peer: string,
    private readonly path: string,
  ) {
    super();
  }

  getPeer(): string {
    return this.peer;
  }

  getPath(): string {
    return this.path;
  }

  getDeadline(): number {
    return Infinity;
  }

  getHost(): string {
    return 'gateway';
  }

  sendMetadata(): void {}

  /** No client certificate reaches a handler through the gateway (etcd's gateway dials itself). */
  getAuthContext(): Record<string, never> {
    return {};
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }
}

/** A server or bidirectional stream: requests come in as 'data' events, answers go to the sink. */
export class InProcessStream extends InProcessCall {
  private isFinished = false;

  constructor(
    request: unknown,
    metadata: Metadata,
    peer: string,
    path: string,
    private readonly sink: StreamSink,
  ) {
    super(request, metadata, peer, path);
    // As grpc-js's server streams: a handler ends a stream with a status by emitting 'error'.
    this.on('error', (err: Error) => this.destroy(err));
  }

  /** Nothing is queued here: the sink takes each answer as it is written. */
  readonly writableLength = 0;

  onceWritableBelow(_bytes: number, listener: () => void): void {
    process.nextTick(listener);
  }

  /** The sink takes each answer as it is written: the write is complete at once. */
  write(response: unknown, callback?: () => void): boolean {
    if (!this.isFinished && !this.cancelled) this.sink.message(response);
    if (callback !== undefined) process.nextTick(callback);
    return true;
  }

  end(): void {
    if (this.isFinished) return;
    this.isFinished = true;
    if (!this.cancelled) this.sink.end();
  }

  destroy(err?: Error): void {
    if (this.isFinished) return;
    this.isFinished = true;
    if (this.cancelled) return;
    const code = (err as { code?: unknown } | undefined)?.code;
    const details = (err as { details?: unknown } | undefined)?.details;
    this.sink.fail(
      typeof code === 'number' ? code : status.UNKNOWN,
      typeof details === 'string' ? details : (err?.message ?? 'stream destroyed'),
    );
  }

  /** A request message from the HTTP body. */
  push(request: unknown): void {
    if (!this.isFinished && !this.cancelled) this.emit('data', request);
  }

  /** The HTTP body ended: the client will send no more (gRPC half-close). */
  halfClose(): void {
    if (!this.isFinished && !this.cancelled) this.emit('end');
  }
}
