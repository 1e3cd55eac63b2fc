import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import type { ApiContext } from '../context.js';
import { answerMetrics } from './metrics-endpoint.js';
import { CORS_HEADERS, sendPlain } from './gateway-errors.js';
import { serveGatewayCall } from './gateway-call.js';
import { StreamSlots } from './stream-slots.js';
import { answerHealth, answerVersion } from './probes.js';
import { GATEWAY_PREFIXES, gatewayRoute } from './routes.js';
import { registeredMethod } from './service-registry.js';

export type Http1Handler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * Everything the client port serves over HTTP/1.1, as etcd does on its client port: /health,
 * /version, /metrics and the grpc-gateway JSON API under /v3/ and /v3beta/. The gateway calls the
 * handlers registered on `grpc`, so a JSON request behaves as the same gRPC request would.
 */
export function createHttp1Handler(grpc: GrpcServer, ctx: ApiContext): Http1Handler {
  const log = ctx.log.child({ component: 'gateway' });
  const slots = new StreamSlots(ctx.limits.maxConcurrentStreams ?? Number.POSITIVE_INFINITY);
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (path === '/version') return answerVersion(response);
    if (path === '/health') return void answerHealth(ctx, response);
    if (path === '/metrics') return answerMetrics(ctx, response);
    const prefix = GATEWAY_PREFIXES.find((p) => path.startsWith(p));
    if (prefix === undefined) {
      // Go's ServeMux sends the bare prefix to its subtree.
      const bare = GATEWAY_PREFIXES.find((p) => path === p.slice(0, -1));
      if (bare !== undefined) {
        response.writeHead(301, { Location: bare });
        response.end();
        return;
      }
      return sendPlain(response, 404, '404 page not found');
    }
    if (request.method === 'OPTIONS') {
      response.writeHead(200, CORS_HEADERS);
      response.end();
      return;
    }
    const route = gatewayRoute(path.slice(prefix.length));
    const method = route === undefined ? undefined : registeredMethod(grpc, route.grpcPath);
    if (route === undefined || method === undefined)
      return sendPlain(response, 404, 'Not Found', CORS_HEADERS);
    if (request.method !== 'POST')
      return sendPlain(response, 405, 'Method Not Allowed', CORS_HEADERS);
    // Held until the answer ends (a watch: until the client goes); withdrawn if it goes first.
    const release = slots.acquire(() => serveGatewayCall(method, route, request, response, log));
    response.once('close', release);
  };
}
