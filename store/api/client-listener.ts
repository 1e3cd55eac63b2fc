import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { serverTlsOptions, type TlsMaterial } from '../tls/tls-config.js';
import { normalizeSerial } from '../tls/crl.js';
import type { ApiContext, ServerSurfaceCall } from './context.js';
import { createHttp1Handler } from './gateway/index.js';
import { isRegisteredService, registeredMethod } from './gateway/service-registry.js';
import { GrpcH2Server } from './grpc/grpc-h2-server.js';
import { GRPC_OVERHEAD_BYTES } from './grpc-server.js';

/** The HTTP/2 connection preface every gRPC client sends first. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** etcd's default --max-concurrent-streams (math.MaxUint32) means no limit. */
const UNLIMITED_STREAMS = 4294967295;

/**
 * One client port for gRPC and HTTP/1.1, as etcd serves them. HTTP/2 connections go to our gRPC
 * server (grpc/grpc-h2-server.ts), which calls the handlers registered on `grpc`; HTTP/1.1 ones to
 * the HTTP/1.1 handler of gateway/ (/health, /version, /metrics, the JSON gateway). On a plain
 * port the first bytes decide; with `tls` (an https:// URL) TLS terminates first and the
 * negotiated ALPN protocol decides.
 */
export function listenClients(
  grpc: GrpcServer, ctx: ApiContext, host: string, port: number, tls: TlsMaterial | null = null,
): Promise<{ port: number; close(): void }> {
  const streamsMax = ctx.limits.maxConcurrentStreams ?? UNLIMITED_STREAMS;
  const h2 = new GrpcH2Server({
    lookup: (path) => registeredMethod(grpc, path),
    isService: (service) => isRegisteredService(grpc, service),
    receiveBytesMax: ctx.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    maxConcurrentStreams: streamsMax >= UNLIMITED_STREAMS ? null : streamsMax,
    log: ctx.log,
  });
  const http = createHttpServer(createHttp1Handler(grpc, ctx));
  const listener: NetServer = tls === null
    // No Nagle: a response written while the previous one is unacknowledged would otherwise wait
    // for the client's delayed ACK (up to 40 ms on Linux). Go, and so etcd, disables it too.
    ? createNetServer({ noDelay: true }, (socket: Socket) => dispatchByFirstBytes(socket, h2, http))
    : listenSecure(tls, h2, http, ctx.log);
  // As etcd: under --client-cert-auth, a call without a token acts as the user named by the
  // common name of its verified certificate. Plain listeners' calls have no certificate.
  if (tls?.isClientCertAuth === true) ctx.certificateCommonName = commonNameOf;
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => {
      const address = listener.address();
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : port,
        close: () => {
          listener.close();
          http.close();
          h2.close();
        },
      });
    });
  });
}

/** A plain HTTP port that serves only /metrics and /health (--listen-metrics-urls). */
export function listenMetrics(handler: ReturnType<typeof createHttp1Handler>, host: string, port: number): Promise<{ port: number; close(): void }> {
  const http = createHttpServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics' || path === '/health') {
      handler(request, response);
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
  });
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      const address = http.address();
      resolve({ port: typeof address === 'object' && address !== null ? address.port : port, close: () => http.close() });
    });
  });
}

function dispatchByFirstBytes(socket: Socket, h2: GrpcH2Server, http: HttpServer): void {
  socket.once('data', (first: Buffer) => {
    // Put the bytes back and stop the flow: the next owner reads them from the buffer.
    socket.pause();
    socket.unshift(first);
    const probe = first.subarray(0, Math.min(first.length, H2_PREFACE.length));
    if (H2_PREFACE.subarray(0, probe.length).equals(probe)) {
      h2.serve(socket);
    } else {
      http.emit('connection', socket);
      socket.resume();
    }
  });
  socket.on('error', () => socket.destroy());
}

/**
 * The TLS form of the client port. Under --client-cert-auth the handshake itself fails for a
 * client without a certificate signed by --trusted-ca-file (or with an expired one), as in etcd:
 * no request is ever read from it.
 */
function listenSecure(tls: TlsMaterial, h2: GrpcH2Server, http: HttpServer, log: Logger): NetServer {
  const server = createTlsServer({
    noDelay: true,
    ...serverTlsOptions(tls),
    ALPNCallback: ({ protocols }) => chooseProtocol(protocols),
  }, (socket: TLSSocket) => {
    socket.on('error', () => socket.destroy());
    // --client-crl-file, checked as etcd checks it: the presented certificate's serial number
    // against the list after the handshake (the list's own dates are not looked at).
    const serial = tls.revokedSerials === null ? undefined : socket.getPeerCertificate().serialNumber;
    if (serial !== undefined && tls.revokedSerials?.has(normalizeSerial(serial)) === true) {
      log.warn({ remote: socket.remoteAddress, serial }, 'rejected connection: certificate revoked');
      socket.destroy();
      return;
    }
    // gRPC clients (Go, grpc-js) offer only h2; anything else speaks HTTP/1.1.
    if (socket.alpnProtocol === 'h2') h2.serve(socket);
    else http.emit('connection', socket);
  });
  // As etcd's "rejected connection from": why (the certificate's verification error when there
  // is one), and who when the socket still knows.
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    const reason = socket.authorizationError === undefined ? err.message.trim() : String(socket.authorizationError);
    log.warn({ remote: socket.remoteAddress, reason }, 'rejected connection');
  });
  return server;
}

/**
 * gRPC clients offer only h2. HTTP clients (curl, browsers, Go's http) offer h2 and http/1.1;
 * they get http/1.1, because on this port HTTP/2 belongs to gRPC while /health and the JSON
 * gateway are served over HTTP/1.1.
 */
function chooseProtocol(offered: readonly string[]): string | undefined {
  if (offered.includes('http/1.1')) return 'http/1.1';
  if (offered.includes('h2')) return 'h2';
  return undefined;
}

/** The CN of a call's verified client certificate; a call reports one only for authorized sockets. */
function commonNameOf(call: ServerSurfaceCall): string | undefined {
  const name = call.getAuthContext().sslPeerCertificate?.subject.CN;
  return Array.isArray(name) ? name[0] : name;
}
