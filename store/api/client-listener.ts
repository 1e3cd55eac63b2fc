import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { ServerCredentials, type Server as GrpcServer } from '@grpc/grpc-js';
import { ETCD_VERSION } from '../server/etcd-server.js';
import type { ApiContext } from './context.js';

/** The HTTP/2 connection preface every gRPC client sends first. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** etcd answers /health after at most this long. */
const HEALTH_TIMEOUT_MS = 1000;

/**
 * One client port for gRPC and plain HTTP/1.1, as etcd serves them: the first bytes of a
 * connection decide. HTTP/2 connections go to grpc-js as they are (no copying proxy); HTTP/1.1
 * ones to a small server answering /health and /version (the JSON gateway is issue #7).
 */
export function listenClients(grpc: GrpcServer, ctx: ApiContext, host: string, port: number): Promise<{ port: number; close(): void }> {
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
  const http = createHttpServer((request, response) => void answerHttp(ctx, request, response));
  const listener: NetServer = createNetServer((socket: Socket) => {
    socket.once('data', (first: Buffer) => {
      // Put the bytes back and stop the flow: the next owner reads them from the buffer.
      socket.pause();
      socket.unshift(first);
      const probe = first.subarray(0, Math.min(first.length, H2_PREFACE.length));
      if (H2_PREFACE.subarray(0, probe.length).equals(probe)) {
        injector.injectConnection(socket);
      } else {
        http.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => {
      const address = listener.address();
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : port,
        close: () => {
          listener.close();
          http.close();
          injector.destroy();
        },
      });
    });
  });
}

async function answerHttp(ctx: ApiContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const send = (status: number, body: unknown): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    response.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json' });
    response.end(text);
  };
  const path = (request.url ?? '/').split('?')[0];
  if (path === '/version') return send(200, { etcdserver: ETCD_VERSION, etcdcluster: '3.4.0' });
  if (path === '/health') {
    const healthy = await isHealthy(ctx);
    return send(healthy ? 200 : 503, { health: healthy ? 'true' : 'false' });
  }
  return send(404, '404 page not found\n');
}

/** As etcd: no alarm, a known leader, and a linearizable read that completes in time. */
async function isHealthy(ctx: ApiContext): Promise<boolean> {
  const server = ctx.server;
  if (server.alarms().length > 0 || server.leaderId === 0n) return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      server.readBarrier(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS); }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
