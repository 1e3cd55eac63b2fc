import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  status,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { Logger } from 'pino';
import { CORS_HEADERS, sendGrpcError, streamErrorChunk, httpStatusOf } from './gateway-errors.js';
import { GoJsonError, readJsonValue, type JsonValue } from './go-json.js';
import { InProcessCall, InProcessStream, metadataOf, type StreamSink } from './in-process-call.js';
import { jsonToMessage, messageToJson, type ProtoObject } from './jsonpb-codec.js';
import { methodTypes } from './proto-types.js';
import type { GatewayRoute } from './routes.js';
import type { RegisteredMethod } from './service-registry.js';

/** A request body larger than this is refused before decoding (gRPC's own receive limit). */
const BODY_BYTES_MAX = 64 * 1024 * 1024;
/** A stream whose reader falls this far behind is cut, so a stalled client cannot grow memory. */
const STREAM_BUFFER_BYTES_MAX = 64 * 1024 * 1024;

const SUCCESS_HEADERS: Readonly<Record<string, string>> = {
  ...CORS_HEADERS,
  'Content-Type': 'application/json',
  'Grpc-Metadata-Content-Type': 'application/grpc',
};

const ERROR_HEADERS: Readonly<Record<string, string>> = {
  ...CORS_HEADERS,
  'Content-Type': 'application/json',
};

interface Call {
  readonly method: RegisteredMethod;
  readonly types: { readonly request: protobuf.Type; readonly response: protobuf.Type };
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly log: Logger;
}

/** Answers one JSON request by calling the gRPC handler registered for `route`. */
export function serveGatewayCall(
  method: RegisteredMethod,
  route: GatewayRoute,
  request: IncomingMessage,
  response: ServerResponse,
  log: Logger,
): void {
  const call: Call = { method, types: methodTypes(route.grpcPath), request, response, log };
  const { requestStream, responseStream } = method.definition;
  if (requestStream && responseStream) {
    serveBidiStream(call, route);
    return;
  }
  readBody(request).then(
    (body) => {
      if (body === null) {
        sendGrpcError(
          response,
          status.RESOURCE_EXHAUSTED,
          `grpc: received message larger than max (> ${BODY_BYTES_MAX})`,
        );
        return;
      }
      let wire: unknown;
      try {
        wire = toRequestWire(call, readJsonValue(body, 0)?.value ?? null);
      } catch (err) {
        // Unary and server-streaming gateway handlers wrap decode errors as InvalidArgument.
        sendGrpcError(response, status.INVALID_ARGUMENT, errorText(err));
        return;
      }
      if (responseStream) serveServerStream(call, wire);
      else serveUnary(call, wire);
    },
    (err: unknown) => {
      log.debug({ err }, 'gateway request body failed');
      response.destroy();
    },
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function peerOf(request: IncomingMessage): string {
  return `${request.socket.remoteAddress ?? ''}:${request.socket.remotePort ?? 0}`;
}

/** JSON → the object grpc-js would hand the handler, through the same decoder gRPC uses. */
function toRequestWire(call: Call, json: JsonValue | null): unknown {
  const object = json === null ? {} : jsonToMessage(call.types.request, json);
  return call.method.definition.requestDeserialize(call.method.definition.requestSerialize(object));
}

/** A handler's answer → jsonpb text, through the same encoder gRPC uses. */
function toResponseJson(call: Call, value: unknown): string {
  const message = call.types.response.decode(call.method.definition.responseSerialize(value));
  return messageToJson(call.types.response, message as unknown as ProtoObject);
}

function readBody(request: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_BYTES_MAX) chunks.push(chunk);
    });
    request.on('end', () =>
      resolve(size > BODY_BYTES_MAX ? null : Buffer.concat(chunks).toString('utf8')),
    );
    request.on('error', reject);
  });
}

function serveUnary(call: Call, wire: unknown): void {
  const { request, response } = call;
  const inProcess = new InProcessCall(
    wire,
    metadataOf(request),
    peerOf(request),
    call.method.definition.path,
  );
  response.on('close', () => {
    if (!response.writableFinished) inProcess.cancel();
  });
  const handler = call.method.handler as handleUnaryCall<unknown, unknown>;
  handler(inProcess as unknown as ServerUnaryCall<unknown, unknown>, (err, value) => {
    if (err !== null && err !== undefined) {
      sendGrpcError(
        response,
        err.code ?? status.UNKNOWN,
        err.details ?? ('message' in err ? err.message : ''),
      );
      return;
    }
    let text: string;
    try {
      text = toResponseJson(call, value);
    } catch (encodeError) {
      call.log.error({ err: encodeError }, 'gateway could not encode a response');
      sendGrpcError(response, status.INTERNAL, errorText(encodeError));
      return;
    }
    response.writeHead(200, SUCCESS_HEADERS);
    response.end(text);
  });
}

/** Writes each answer as grpc-gateway does: {"result": …} and a newline, headers at the first. */
function streamSink(call: Call, onOverflow: () => void): StreamSink {
  const { response } = call;
  const write = (chunk: string): void => {
    if (response.destroyed) return;
    response.write(chunk);
    if (response.writableLength > STREAM_BUFFER_BYTES_MAX) {
      call.log.warn(
        { bufferedBytes: response.writableLength },
        'gateway stream reader too slow; closing',
      );
      onOverflow();
      response.destroy();
    }
  };
  return {
    message: (value) => {
      if (!response.headersSent) response.writeHead(200, SUCCESS_HEADERS);
      write(`{"result":${toResponseJson(call, value)}}\n`);
    },
    end: () => {
      if (!response.headersSent) response.writeHead(200, SUCCESS_HEADERS);
      response.end();
    },
    fail: (code, message) => {
      if (!response.headersSent) response.writeHead(httpStatusOf(code), ERROR_HEADERS);
      write(streamErrorChunk(code, message));
      response.end();
    },
  };
}

function openStream(call: Call, wire: unknown): InProcessStream {
  const { request, response } = call;
  let stream: InProcessStream | null = null;
  const sink = streamSink(call, () => stream?.cancel());
  stream = new InProcessStream(
    wire,
    metadataOf(request),
    peerOf(request),
    call.method.definition.path,
    sink,
  );
  const opened = stream;
  response.on('close', () => {
    if (!response.writableFinished) opened.cancel();
  });
  return opened;
}

function serveServerStream(call: Call, wire: unknown): void {
  const stream = openStream(call, wire);
  const handler = call.method.handler as handleServerStreamingCall<unknown, unknown>;
  handler(stream as unknown as ServerWritableStream<unknown, unknown>);
}

/**
 * The body is a sequence of JSON requests, decoded as they arrive. As in grpc-gateway, a bad
 * first request fails the call (HTTP 500, code Unknown); a bad later one stops the reading, as
 * the end of the body does.
 */
function serveBidiStream(call: Call, route: GatewayRoute): void {
  const { request, response } = call;
  let stream: InProcessStream | null = null;
  let pending = '';
  let isReading = true;
  const start = (): InProcessStream => {
    if (stream !== null) return stream;
    stream = openStream(call, undefined);
    (call.method.handler as handleBidiStreamingCall<unknown, unknown>)(
      stream as unknown as ServerDuplexStream<unknown, unknown>,
    );
    return stream;
  };
  const stopReading = (): void => {
    isReading = false;
    const opened = start();
    if (route.isEndedByBodyEnd) opened.halfClose();
  };
  const drain = (isBodyEnd: boolean): void => {
    for (let at = 0; isReading;) {
      let next: { value: JsonValue; end: number } | null;
      let wire: unknown;
      try {
        next = readJsonValue(pending, at);
        if (next === null) {
          pending = '';
          if (isBodyEnd) stopReading();
          return;
        }
        wire = toRequestWire(call, next.value);
      } catch (err) {
        if (err instanceof GoJsonError && err.isTruncated && !isBodyEnd) {
          pending = pending.slice(at);
          return; // the rest of this request has not arrived yet
        }
        if (stream === null) {
          isReading = false;
          sendGrpcError(response, status.UNKNOWN, errorText(err));
          return;
        }
        call.log.debug({ err }, 'gateway stream request refused; no more requests read');
        stopReading();
        return;
      }
      at = next.end;
      start().push(wire);
    }
  };
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => {
    if (!isReading) return;
    pending += chunk;
    if (pending.length > BODY_BYTES_MAX) {
      isReading = false;
      sendGrpcError(
        response,
        status.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (> ${BODY_BYTES_MAX})`,
      );
      return;
    }
    drain(false);
  });
  request.on('end', () => drain(true));
  request.on('error', () => stream?.cancel());
}
