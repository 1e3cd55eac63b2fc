import type { Socket } from 'node:net';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { HeaderList } from '../h2/hpack.js';
import { H2ServerConnection, type H2StreamHandler } from '../h2/h2-server-connection.js';
import type { H2ServerStream } from '../h2/h2-server-stream.js';
import type { RegisteredMethod } from '../gateway/service-registry.js';
import { CallInput } from './call-input.js';
import { DeadlineSweeper } from './deadline-sweeper.js';
import { parseGrpcTimeout, requestHead, statusBlock } from './grpc-wire.js';
import { ServerCall, type CallStatus } from './server-call.js';

export interface GrpcH2ServerOptions {
  /** The handler and codecs of a gRPC path ("/etcdserverpb.KV/Range"). */
  readonly lookup: (path: string) => RegisteredMethod | undefined;
  /** Whether a service ("etcdserverpb.KV") is served, for Go's words on an unknown method. */
  readonly isService: (service: string) => boolean;
  /** Refused from its length prefix above this (the request limit plus gRPC's allowance). */
  readonly receiveBytesMax: number;
  /** --max-concurrent-streams; null for no limit. */
  readonly maxConcurrentStreams: number | null;
  readonly log: Logger;
  /** Server keepalive pings (see H2ServerOptions); none when absent. */
  readonly keepalive?: { readonly intervalMs: number; readonly timeoutMs: number } | null;
}

/** Input of a stream answered at once (unknown method, refused header): read and dropped. */
const DISCARD: H2StreamHandler = { onData() {}, onEndOfInput() {}, onReset() {} };

/**
 * etcd's gRPC services on our own HTTP/2 server connection (h2/), in place of grpc-js and Node's
 * http2: a request costs a header-block decode, a message decode, the handler, and its answer
 * framed into the connection's next write. Handlers are the same ones the JSON gateway calls,
 * found by path; each call looks to them like a grpc-js server call (server-call.ts).
 */
export class GrpcH2Server {
  private readonly connections = new Set<H2ServerConnection>();
  private readonly deadlines = new DeadlineSweeper();

  constructor(private readonly options: GrpcH2ServerOptions) {}

  /** Serves one client connection whose bytes (from the preface on) the socket will deliver. */
  serve(socket: Socket): void {
    const connection = new H2ServerConnection(socket, {
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      onStream: (stream, headers) => this.open(stream, headers),
      log: this.options.log,
      keepalive: this.options.keepalive ?? null,
    });
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
    socket.resume();
  }

  close(): void {
    for (const connection of this.connections) connection.close();
    this.connections.clear();
    this.deadlines.stop();
  }

  private open(stream: H2ServerStream, headers: HeaderList): H2StreamHandler {
    const head = requestHead(headers);
    const registered = this.options.lookup(head.path);
    if (registered === undefined) {
      const refusal = this.unknownMethod(head.path);
      stream.sendHeaders(statusBlock(refusal.code, refusal.details, true), true);
      return DISCARD;
    }
    if (head.encoding !== null && head.encoding !== 'identity') {
      // No decompressor is installed, as in etcd (grpc-go refuses the call before reading it).
      stream.sendHeaders(statusBlock(status.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding ${JSON.stringify(head.encoding)}`, true), true);
      return DISCARD;
    }
    let deadline = Infinity;
    if (head.timeout !== null) {
      const timeoutMs = parseGrpcTimeout(head.timeout);
      if (timeoutMs === null) {
        stream.sendHeaders(statusBlock(status.INTERNAL, `malformed time-out: ${head.timeout}`, true), true);
        return DISCARD;
      }
      deadline = Date.now() + timeoutMs;
    }
    const call = new ServerCall(stream, registered.definition, head.metadata, deadline, head.authority);
    if (deadline !== Infinity) this.deadlines.watch(call, deadline);
    return new CallInput(call, registered.definition, registered.handler, this.options.receiveBytesMax);
  }

  /** grpc-go's answers: "unknown service X", "unknown method M for service X", a malformed name. */
  private unknownMethod(path: string): CallStatus {
    const name = path.startsWith('/') ? path.slice(1) : path;
    const slash = name.lastIndexOf('/');
    if (slash < 0) return { code: status.RESOURCE_EXHAUSTED, details: `malformed method name: ${JSON.stringify(path)}` };
    const service = name.slice(0, slash);
    const method = name.slice(slash + 1);
    const details = this.options.isService(service) ? `unknown method ${method} for service ${service}` : `unknown service ${service}`;
    return { code: status.UNIMPLEMENTED, details };
  }
}
