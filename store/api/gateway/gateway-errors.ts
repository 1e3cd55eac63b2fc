import type { ServerResponse } from 'node:http';
import { status } from '@grpc/grpc-js';
import { goJsonString } from './jsonpb-codec.js';

/** grpc-gateway v1's HTTPStatusFromCode, indexed by gRPC code. */
const HTTP_STATUS_BY_CODE: readonly number[] = [
  200, // OK
  408, // CANCELLED
  500, // UNKNOWN
  400, // INVALID_ARGUMENT
  504, // DEADLINE_EXCEEDED
  404, // NOT_FOUND
  409, // ALREADY_EXISTS
  403, // PERMISSION_DENIED
  429, // RESOURCE_EXHAUSTED
  412, // FAILED_PRECONDITION (etcd clients see 412 for "not leader", "lease already exists")
  409, // ABORTED
  400, // OUT_OF_RANGE (etcd's "required revision has been compacted")
  501, // UNIMPLEMENTED
  500, // INTERNAL
  503, // UNAVAILABLE
  500, // DATA_LOSS
  401, // UNAUTHENTICATED
];

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpStatusOf(code: number): number {
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}

/** etcd adds these to every gateway answer (its CORS wrapper around the gateway mux). */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
};

/** A refused call as grpc-gateway v1 writes it: {"error","message","code"} and the mapped status. */
export function sendGrpcError(response: ServerResponse, code: number, message: string): void {
  if (response.headersSent) return;
  const text = goJsonString(message);
  response.writeHead(httpStatusOf(code), { ...CORS_HEADERS, 'Content-Type': 'application/json' });
  response.end(`{"error":${text},"message":${text},"code":${code}}`);
}

/** A failure after a stream started: grpc-gateway v1's error chunk. */
export function streamErrorChunk(code: number, message: string): string {
  const httpStatus = httpStatusOf(code);
  return (
    `{"error":{"grpc_code":${code},"http_code":${httpStatus},"message":${goJsonString(message)},` +
    `"http_status":${goJsonString(STATUS_TEXT[httpStatus] ?? '')}}}`
  );
}

/** Go's http.Error: plain text, one line, with nosniff. */
export function sendPlain(
  response: ServerResponse,
  httpStatus: number,
  text: string,
  extra: Readonly<Record<string, string>> = {},
): void {
  response.writeHead(httpStatus, {
    ...extra,
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
  });
  response.end(`${text}\n`);
}

export const UNKNOWN_CODE = status.UNKNOWN;
export const INVALID_ARGUMENT_CODE = status.INVALID_ARGUMENT;
