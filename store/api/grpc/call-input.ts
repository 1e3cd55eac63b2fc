import { status, type MethodDefinition, type UntypedHandleCall } from '@grpc/grpc-js';
import type { H2StreamHandler } from '../h2/h2-server-connection.js';
import { MessageFramingError, MessageReader, type ReceivedMessage } from './message-reader.js';
import { statusOf, type ServerCall } from './server-call.js';

// Handlers are typed for grpc-js's call objects; ServerCall has the part of them they use.
type UnaryHandler = (call: ServerCall, callback: (err: unknown, value?: unknown) => void) => void;
type StreamHandler = (call: ServerCall) => void;

/**
 * A call's input side: the stream's DATA cut into messages, decoded, and the handler run when it
 * has what it needs — a unary or server-streaming handler once the single request has arrived
 * and the client half-closed (as grpc-go and grpc-js do), a streaming-request handler at once,
 * with each request as a 'data' event and the half-close as 'end'.
 */
export class CallInput implements H2StreamHandler {
  private readonly reader: MessageReader;
  private single: Buffer | null = null;
  private isStarted = false;

  constructor(
    private readonly call: ServerCall,
    private readonly method: MethodDefinition<unknown, unknown>,
    private readonly handler: UntypedHandleCall,
    private readonly receiveBytesMax: number,
  ) {
    this.reader = new MessageReader(receiveBytesMax);
    if (method.requestStream) this.start();
  }

  onData(payload: Buffer): void {
    if (this.call.isDone) return;
    let messages: ReceivedMessage[];
    try {
      messages = this.reader.push(payload);
    } catch (err) {
      if (!(err instanceof MessageFramingError)) throw err;
      this.call.finish(err.kind === 'too-large'
        ? { code: status.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${err.declaredBytes} vs. ${this.receiveBytesMax})` }
        : { code: status.INTERNAL, details: `grpc: received unexpected payload format ${err.declaredBytes}` });
      return;
    }
    for (const message of messages) {
      if (this.call.isDone) return;
      if (message.isCompressed) {
        // No decompressor is installed (as in etcd); a non-identity grpc-encoding was refused
        // when the call opened, so a compressed flag here comes with identity.
        this.call.finish({ code: status.INTERNAL, details: 'grpc: compressed flag set with identity or empty encoding' });
        return;
      }
      if (!this.method.requestStream) {
        if (this.single !== null) {
          this.call.finish({ code: status.INTERNAL, details: 'grpc: the client sent more than one request message on a unary call' });
          return;
        }
        this.single = message.bytes;
        continue;
      }
      const request = this.decode(message.bytes);
      if (request !== undefined) this.call.emit('data', request);
    }
  }

  onEndOfInput(): void {
    if (this.call.isDone) return;
    if (this.method.requestStream) {
      this.call.emit('end');
      return;
    }
    if (this.single === null) {
      this.call.finish({ code: status.INTERNAL, details: 'grpc: the client sent no request message' });
      return;
    }
    const request = this.decode(this.single);
    this.single = null;
    if (request === undefined) return;
    this.call.request = request;
    this.start();
  }

  onReset(): void {
    this.call.cancel();
  }

  /** The decoded request; undefined when decoding threw (the call has been failed). */
  private decode(bytes: Buffer): unknown {
    try {
      return this.method.requestDeserialize(bytes);
    } catch (err) {
      this.call.finish({ code: status.INTERNAL, details: `grpc: error unmarshalling request: ${statusOf(err).details}` });
      return undefined;
    }
  }

  private start(): void {
    if (this.isStarted) return;
    this.isStarted = true;
    const call = this.call;
    try {
      if (this.method.responseStream) {
        (this.handler as unknown as StreamHandler)(call);
        return;
      }
      (this.handler as unknown as UnaryHandler)(call, (err, value) => {
        if (err !== null && err !== undefined) call.finish(statusOf(err));
        else call.answer(value);
      });
    } catch (err) {
      call.finish({ code: status.UNKNOWN, details: statusOf(err).details });
    }
  }
}
