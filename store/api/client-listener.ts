import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { ServerCredentials, type Server as GrpcServer } from '@grpc/grpc-js';
import type { ApiContext } from './context.js';
import { createHttp1Handler } from './gateway/index.js';

/** The HTTP/2 connection preface every gRPC client sends first. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * One client port for gRPC and plain HTTP/1.1, as etcd serves them: the first bytes of a
 * connection decide. HTTP/2 connections go to grpc-js as they are (no copying proxy); HTTP/1.1
 * ones to the HTTP/1.1 handler of gateway/ (/health, /version, /metrics, the JSON gateway).
 */
export function listenClients(grpc: GrpcServer, ctx: ApiContext, host: string, port: number): Promise<{ port: number; close(): void }> {
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
  const http = createHttpServer(createHttp1Handler(grpc, ctx));
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
