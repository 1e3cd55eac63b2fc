// The peer client (our HTTP/2 client connection and gRPC calls on it) against the peer server
// members run (GrpcH2Server): unary calls and statuses, client streams past every window, deadlines,
// a peer that is down and comes up, a connection lost mid-stream, and a link gone silent.
import { status, type MethodDefinition, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcH2Server } from '../../store/api/grpc/grpc-h2-server.js';
import type { RegisteredMethod } from '../../store/api/gateway/service-registry.js';
import { PeerCallError, PeerChannel } from '../../store/transport/peer-channel.js';
import { peerDialOptions } from '../../store/transport/peer-transport.js';
import { createSelfSignedCert } from '../../store/tls/self-signed-cert.js';
import type { TlsMaterial } from '../../store/tls/tls-config.js';
import { freePort, waitFor } from '../support/ports.js';

const identity = (b: Buffer): Buffer => b;
const log = pino({ level: 'silent' });

function method(path: string, requestStream: boolean): MethodDefinition<Buffer, Buffer> {
  return {
    path, requestStream, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  };
}

interface Peer {
  readonly port: number;
  readonly sockets: Set<Socket>;
  /** Calls to /test.T/Hold, unanswered. */
  readonly held: sendUnaryData<Buffer>[];
  close(): Promise<void>;
}

/**
 * A peer server: /test.T/Echo answers its request, /test.T/Refuse fails with FAILED_PRECONDITION,
 * /test.T/Hold never answers, /test.T/Digest (client stream) answers the count and SHA-256 of
 * what it received, in order.
 */
async function startPeer(port = 0, secure: { readonly key: string; readonly cert: string } | null = null): Promise<Peer> {
  const held: sendUnaryData<Buffer>[] = [];
  const methods = new Map<string, RegisteredMethod>();
  const add = (path: string, requestStream: boolean, handler: RegisteredMethod['handler']): void => {
    methods.set(path, { definition: method(path, requestStream) as MethodDefinition<unknown, unknown>, handler });
  };
  add('/test.T/Echo', false, ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, call.request)) as RegisteredMethod['handler']);
  add('/test.T/Refuse', false, ((_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
    callback({ code: status.FAILED_PRECONDITION, details: 'cluster ID mismatch: 100% sure' })) as RegisteredMethod['handler']);
  add('/test.T/Hold', false, ((_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => held.push(callback)) as RegisteredMethod['handler']);
  add('/test.T/Digest', true, ((call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
    const hash = createHash('sha256');
    let count = 0;
    call.on('data', (message: Buffer) => {
      count++;
      hash.update(message);
    });
    call.on('end', () => callback(null, Buffer.from(`${count}:${hash.digest('hex')}`)));
  }) as RegisteredMethod['handler']);
  const grpc = new GrpcH2Server({
    lookup: (path) => methods.get(path), isService: (name) => name === 'test.T',
    receiveBytesMax: 64 << 20, maxConcurrentStreams: null, log,
  });
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    grpc.serve(socket);
  };
  const server: Server = secure === null ? createServer({ noDelay: true }, onSocket) : createTlsServer({ ...secure, ALPNProtocols: ['h2'] }, onSocket);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    sockets, held,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      grpc.close();
      server.close(() => resolve());
    }),
  };
}

function channelTo(port: number, keepalive: { intervalMs: number; timeoutMs: number } | null = null): PeerChannel {
  const channel = new PeerChannel({
    target: new URL(`http://127.0.0.1:${port}`), tls: null, keepalive, backoff: { initialMs: 20, maxMs: 200 }, log,
  });
  cleanups.push(async () => channel.close());
  return channel;
}

function failure(promise: Promise<unknown>): Promise<PeerCallError> {
  return promise.then(
    () => { throw new Error('the call succeeded'); },
    (err: unknown) => {
      if (!(err instanceof PeerCallError)) throw err;
      return err;
    },
  );
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('peer channel', () => {
  it('makes unary calls and reports the server status and message', async () => {
    const peer = await startPeer();
    cleanups.push(() => peer.close());
    const channel = channelTo(peer.port);
    const big = Buffer.alloc(200_000, 0x5a); // past one frame and the default 64 KiB window
    const answers = await Promise.all([
      channel.unary('/test.T/Echo', Buffer.from('hello'), 5_000),
      channel.unary('/test.T/Echo', big, 5_000),
    ]);
    expect(answers[0]?.toString()).toBe('hello');
    expect(answers[1]?.equals(big)).toBe(true);
    const refused = await failure(channel.unary('/test.T/Refuse', Buffer.from('x'), 5_000));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.details).toBe('cluster ID mismatch: 100% sure');
    const unknown = await failure(channel.unary('/test.T/Nope', Buffer.from('x'), 5_000));
    expect(unknown.code).toBe(status.UNIMPLEMENTED);
    expect(channel.activeSinceMs).not.toBeNull();
  });

  it('delivers a client stream in order, byte for byte, through full windows and split frames', async () => {
    const peer = await startPeer();
    cleanups.push(() => peer.close());
    const channel = channelTo(peer.port);
    const expected = createHash('sha256');
    let answer: Buffer | null = null;
    let error: PeerCallError | null = null;
    const call = channel.clientStream('/test.T/Digest', (err, response) => {
      error = err;
      answer = response ?? Buffer.alloc(0);
    });
    let wasBackpressured = false;
    let drains = 0;
    call.on('drain', () => drains++);
    const sizes = [1, 0, 16_379, 16_380, 16_384, 70_000, 300_000, 1_100_000, 5, 2_500_000, 33];
    for (let i = 0; i < sizes.length; i++) {
      const message = Buffer.alloc(sizes[i] as number, i + 1);
      expected.update(message);
      if (!call.write(message)) wasBackpressured = true;
    }
    call.end();
    await waitFor('the stream digest', () => answer ?? error ?? undefined, 20_000);
    expect(error).toBeNull();
    expect(String(answer)).toBe(`${sizes.length}:${expected.digest('hex')}`);
    expect(wasBackpressured).toBe(true);
    expect(drains).toBeGreaterThan(0);
  });

  it('gives up on a call at its deadline with DEADLINE_EXCEEDED', async () => {
    const peer = await startPeer();
    cleanups.push(() => peer.close());
    const channel = channelTo(peer.port);
    const started = Date.now();
    const err = await failure(channel.unary('/test.T/Hold', Buffer.from('x'), 300));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(peer.held).toHaveLength(1);
    // The connection is still good for the next call.
    expect((await channel.unary('/test.T/Echo', Buffer.from('after'), 5_000)).toString()).toBe('after');
  });

  it('fails calls to a peer that is down with UNAVAILABLE, and connects once it is up', async () => {
    const port = await freePort();
    const channel = channelTo(port);
    const down = await failure(channel.unary('/test.T/Echo', Buffer.from('x'), 5_000));
    expect(down.code).toBe(status.UNAVAILABLE);
    expect(down.details).toMatch(/ECONNREFUSED/);
    expect(channel.activeSinceMs).toBeNull();
    // Between dials a stream fails at once, but only after clientStream() has returned it (the
    // transport's callback compares the call it holds).
    let failedCall: unknown = null;
    const call = channel.clientStream('/test.T/Digest', (err) => {
      if (err?.code === status.UNAVAILABLE) failedCall = call;
    });
    await waitFor('the stream to fail', () => failedCall ?? undefined, 5_000);
    expect(failedCall).toBe(call);
    const peer = await startPeer(port);
    cleanups.push(() => peer.close());
    await waitFor('the channel to connect', () => channel.activeSinceMs ?? undefined, 5_000);
    expect((await channel.unary('/test.T/Echo', Buffer.from('up'), 5_000)).toString()).toBe('up');
  });

  it('lets a writer waiting for room go on once the call has failed (a snapshot to a peer that is down)', async () => {
    const channel = channelTo(await freePort());
    let error: PeerCallError | null = null;
    const call = channel.clientStream('/test.T/Digest', (err) => { error = err; });
    expect(call.write(Buffer.alloc(2 << 20))).toBe(false);
    let isWritable = false;
    void call.whenWritable().then(() => { isWritable = true; });
    await waitFor('the writer to be let go', () => (isWritable ? true : undefined), 5_000);
    expect(call.isOver).toBe(true);
    expect((error as unknown as PeerCallError).code).toBe(status.UNAVAILABLE);
    expect(call.write(Buffer.from('late'))).toBe(false);
    await call.whenWritable(); // over: resolves at once
  });

  it('fails an open stream with UNAVAILABLE when the connection is lost, then reconnects', async () => {
    const peer = await startPeer();
    cleanups.push(() => peer.close());
    const channel = channelTo(peer.port);
    let error: PeerCallError | null = null;
    let isDone = false;
    const call = channel.clientStream('/test.T/Digest', (err) => {
      error = err;
      isDone = true;
    });
    call.write(Buffer.from('first'));
    await waitFor('the connection', () => (peer.sockets.size > 0 ? true : undefined), 5_000);
    const firstSince = await waitFor('the channel to connect', () => channel.activeSinceMs ?? undefined, 5_000);
    for (const socket of peer.sockets) socket.destroy();
    await waitFor('the stream to fail', () => (isDone ? true : undefined), 5_000);
    expect(error).toBeInstanceOf(PeerCallError);
    expect((error as unknown as PeerCallError).code).toBe(status.UNAVAILABLE);
    const since = await waitFor('a new connection', () => (channel.activeSinceMs !== null && channel.activeSinceMs > firstSince ? channel.activeSinceMs : undefined), 5_000);
    expect(since).toBeGreaterThan(firstSince);
    expect((await channel.unary('/test.T/Echo', Buffer.from('again'), 5_000)).toString()).toBe('again');
  });

  it('holds a self-signed server (auto TLS) to the allowed CN or hostname, as a verified one', async () => {
    const { certPem, keyPem } = createSelfSignedCert(['127.0.0.1'], new Date(Date.now() - 60_000));
    const peer = await startPeer(0, { key: keyPem, cert: certPem });
    cleanups.push(() => peer.close());
    const dial = (allowedPeer: TlsMaterial['allowedPeer']): PeerChannel => {
      const material: TlsMaterial = {
        side: 'peer', cert: Buffer.from(certPem), key: Buffer.from(keyPem), ca: null,
        isClientCertAuth: false, isSelfSigned: true, revokedSerials: null, allowedPeer,
      };
      const target = new URL(`https://127.0.0.1:${peer.port}`);
      const channel = new PeerChannel({ target, ...peerDialOptions(target, material, true), keepalive: null, backoff: { initialMs: 20, maxMs: 200 }, log });
      cleanups.push(async () => channel.close());
      return channel;
    };
    // Auto TLS certificates carry no common name (as etcd's): an allowed CN refuses them.
    const refused = await failure(dial({ commonName: 'm1' }).unary('/test.T/Echo', Buffer.from('x'), 5_000));
    expect(refused.code).toBe(status.UNAVAILABLE);
    expect(refused.details).toMatch(/bad certificate .*CN "" is not "m1"/);
    // Valid for the allowed hostname (a subject alternative name), or no rule at all: served.
    expect((await dial({ hostname: '127.0.0.1' }).unary('/test.T/Echo', Buffer.from('by name'), 5_000)).toString()).toBe('by name');
    expect((await dial(null).unary('/test.T/Echo', Buffer.from('any'), 5_000)).toString()).toBe('any');
  });

  it('drops a connection whose keepalive pings go unanswered, and fails its streams', async () => {
    // A server that answers the handshake (SETTINGS) and then reads nothing more: bytes stop
    // flowing without the connection closing, as behind a blackholing middlebox.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
      socket.once('data', () => socket.pause());
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      silent.close(() => resolve());
    }));
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const channel = channelTo(port, { intervalMs: 100, timeoutMs: 300 });
    let error: PeerCallError | null = null;
    const call = channel.clientStream('/test.T/Digest', (err) => { error = err; });
    call.write(Buffer.from('into the void'));
    const started = Date.now();
    await waitFor('the stream to fail', () => error ?? undefined, 5_000);
    expect(error).toBeInstanceOf(PeerCallError);
    expect((error as unknown as PeerCallError).code).toBe(status.UNAVAILABLE);
    expect((error as unknown as PeerCallError).details).toMatch(/keepalive/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
