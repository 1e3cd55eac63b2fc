import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../shared/log.js';
import { ApiError, toApiError } from './errors.js';
import type { RequestAuthenticator } from './api-auth.js';
import { schedulerMetrics } from '../shared/metrics/scheduler-metrics.js';

/** A request body larger than this is refused before parsing (a job spec is a few KiB). */
export const REQUEST_BODY_BYTES_MAX = 2 * 1024 * 1024;

export interface RequestContext {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Parsed JSON body for POST/PUT; undefined when there is none. */
  readonly body: unknown;
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly log: Logger;
}

/** A handler answers JSON, or writes the response itself (streams) and says so. */
export type RouteResult = { readonly status: number; readonly body: unknown } | 'streamed';
export type RouteHandler = (context: RequestContext) => Promise<RouteResult>;

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `:param` segments, e.g. `/v1/jobs/:name/history`. */
  readonly path: string;
  readonly handler: RouteHandler;
  /** Served without credentials even when the API requires them (metrics scrapes, health checks). */
  readonly isPublic?: boolean;
}

interface CompiledRoute extends Route {
  readonly segments: readonly string[];
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export function ok(body: unknown, status = 200): RouteResult {
  return { status, body };
}

/**
 * Starts the JSON API on host:port (port 0 picks a free one). With `authenticate`, every
 * non-public route requires credentials.
 */
export async function startApiServer(
  host: string,
  port: number,
  routes: readonly Route[],
  logger: Logger,
  authenticate?: RequestAuthenticator,
): Promise<ApiServer> {
  const compiled: CompiledRoute[] = routes.map((r) => ({ ...r, segments: splitPath(r.path) }));
  const server = createServer((request, response) => {
    void handle(compiled, request, response, logger, authenticate);
  });
  // Long-lived `logs --follow` streams must not keep close() waiting forever.
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await listen(server, host, port);
  const address = server.address() as AddressInfo;
  const url = `http://${formatHost(address.address)}:${address.port}`;
  logger.info({ url }, 'api listening');
  return {
    url,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function match(
  route: CompiledRoute,
  segments: readonly string[],
): Record<string, string> | undefined {
  if (route.segments.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const pattern = route.segments[i] ?? '';
    const actual = segments[i] ?? '';
    if (pattern.startsWith(':')) params[pattern.slice(1)] = decodeURIComponent(actual);
    else if (pattern !== actual) return undefined;
  }
  return params;
}

async function handle(
  routes: readonly CompiledRoute[],
  request: IncomingMessage,
  response: ServerResponse,
  logger: Logger,
  authenticate: RequestAuthenticator | undefined,
): Promise<void> {
  const log = logger.child({ requestId: randomUUID().slice(0, 8) });
  const url = new URL(request.url ?? '/', 'http://localhost');
  const method = request.method ?? 'GET';
  try {
    const segments = splitPath(url.pathname);
    let pathMatched = false;
    for (const route of routes) {
      const params = match(route, segments);
      if (params === undefined) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      schedulerMetrics.apiRequests.inc({ method, route: route.path });
      // Before the body is read: an unauthenticated client must not make the master buffer 2 MiB.
      if (authenticate !== undefined && route.isPublic !== true) await authenticate(request);
      const body = method === 'POST' || method === 'PUT' ? await readJsonBody(request) : undefined;
      const result = await route.handler({
        method, params, query: url.searchParams, body, request, response, log,
      });
      if (result !== 'streamed') sendJson(response, result.status, result.body);
      log.debug({ method, path: url.pathname }, 'request served');
      return;
    }
    schedulerMetrics.apiRequests.inc({ method, route: 'unmatched' });
    throw pathMatched
      ? new ApiError('method-not-allowed', `${method} not allowed on ${url.pathname}`)
      : new ApiError('not-found', `no route for ${method} ${url.pathname}`);
  } catch (err) {
    const apiError = toApiError(err);
    if (apiError.status >= 500) log.error({ err, method, path: url.pathname }, 'request failed');
    if (response.headersSent) {
      response.destroy();
      return;
    }
    // The rest of an oversized (or unauthenticated) body was never read: the connection cannot
    // carry another request, and a client that pooled it would see its next request reset.
    const isUnread = apiError.kind === 'body-too-large' || apiError.kind === 'unauthorized';
    sendJson(response, apiError.status, apiError.toJSON(), {
      ...(isUnread ? { connection: 'close' } : {}),
      // Lets a browser ask for a store user's name and password (the web UI calls this API).
      ...(apiError.kind === 'unauthorized' ? { 'www-authenticate': 'Basic realm="etcron", charset="UTF-8"' } : {}),
    });
  }
}

function sendJson(
  response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

async function readJsonBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > REQUEST_BODY_BYTES_MAX) {
      throw new ApiError('body-too-large', `request body over ${REQUEST_BODY_BYTES_MAX} bytes`);
    }
    chunks.push(buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ApiError('invalid-request', `body is not valid JSON: ${(err as Error).message}`);
  }
}
