import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import type { ApiContext } from '../context.js';
import { answerHealth, answerVersion } from './probes.js';

export type Http1Handler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * Everything the client port serves over HTTP/1.1, as etcd does on its client port: /health,
 * /version, /metrics and the grpc-gateway JSON API under /v3/ and /v3beta/. The gateway calls the
 * handlers registered on `grpc`, so a JSON request behaves as the same gRPC request would.
 */
export function createHttp1Handler(grpc: GrpcServer, ctx: ApiContext): Http1Handler {
  void grpc;
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/version') return answerVersion(response);
    if (path === '/health') return void answerHealth(ctx, response);
    response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('404 page not found\n');
  };
}
