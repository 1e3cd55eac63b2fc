// The HTTP/2 server connection under Node's own HTTP/2 client (nghttp2): flow control both
// ways, many streams at once, resets, pings, and a protocol error ending the connection.
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { H2ServerConnection, type H2StreamHandler } from '../../store/api/h2/h2-server-connection.js';
import type { H2ServerStream } from '../../store/api/h2/h2-server-stream.js';
import { frameOf } from '../../store/api/h2/h2-protocol.js';
import { CLIENT_PREFACE, FrameReader } from '../../store/api/h2/frames.js';
import { RESPONSE_HEADERS_BLOCK, OK_TRAILERS_BLOCK } from '../../store/api/grpc/grpc-wire.js';
import { waitFor } from '../support/ports.js';

interface Served {
  readonly port: number;
  readonly streams: H2ServerStream[];
  readonly resets: number[];
  close(): Promise<void>;
}

/**
 * A server whose streams answer by path: /echo sends back what it received once the client
 * half-closes; /bytes/N sends N bytes at once; /hold answers nothing.
 */
async function serve(): Promise<Served> {
  const streams: H2ServerStream[] = [];
  const resets: number[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    new H2ServerConnection(socket, {
      maxConcurrentStreams: null,
      log: pino({ level: 'silent' }),
      onStream: (stream, headers): H2StreamHandler => {
        streams.push(stream);
        const path = headers.find(([name]) => name === ':path')?.[1] ?? '';
        const received: Buffer[] = [];
        const answer = (body: Buffer): void => {
          stream.sendHeaders(RESPONSE_HEADERS_BLOCK, false);
          stream.sendData(body);
          stream.sendTrailers(OK_TRAILERS_BLOCK);
        };
        if (path.startsWith('/bytes/')) answer(Buffer.alloc(Number(path.slice(7)), 0x61));
        return {
          onData: (payload) => received.push(Buffer.from(payload)),
          onEndOfInput: () => { if (path === '/echo') answer(Buffer.concat(received)); },
          onReset: () => resets.push(stream.id),
        };
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port, streams, resets,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

function request(session: ClientHttp2Session, path: string, body?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc' });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
    stream.end(body);
  });
}

let served: Served | undefined;
const sessions: ClientHttp2Session[] = [];
afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await served?.close();
  served = undefined;
});

function client(port: number, settings: { initialWindowSize?: number } = {}): ClientHttp2Session {
  const session = connect(`http://127.0.0.1:${port}`, { settings });
  sessions.push(session);
  return session;
}

describe('HTTP/2 server connection', () => {
  it('sends a response far larger than the client\'s windows, intact, as the client grants room', async () => {
    served = await serve();
    const session = client(served.port, { initialWindowSize: 16_384 });
    const body = await request(session, '/bytes/3000000');
    expect(body.length).toBe(3_000_000);
    expect(body.every((byte) => byte === 0x61)).toBe(true);
  });

  it('takes requests larger than its own windows and gives the windows back as it reads', async () => {
    served = await serve();
    const session = client(served.port);
    const sent = Buffer.alloc(5_000_000);
    for (let i = 0; i < sent.length; i++) sent[i] = i % 251;
    const body = await request(session, '/echo', sent);
    expect(body.equals(sent)).toBe(true);
  });

  it('holds data a client does not read within the window, and sends the rest once it reads', async () => {
    served = await serve();
    const session = client(served.port, { initialWindowSize: 65_535 });
    const stream = session.request({ ':method': 'POST', ':path': '/bytes/1000000' });
    stream.end();
    stream.pause();
    await waitFor('the server to queue what the window does not allow', () => {
      const serverStream = served?.streams[0];
      return serverStream !== undefined && serverStream.queuedBytes > 0 ? true : undefined;
    }, 5_000, 10);
    const queued = served.streams[0]?.queuedBytes ?? 0;
    expect(queued).toBeGreaterThanOrEqual(1_000_000 - 65_535);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise((resolve) => stream.on('end', resolve));
    stream.resume();
    await ended;
    expect(Buffer.concat(chunks).length).toBe(1_000_000);
  });

  it('answers hundreds of streams opened at once on one connection', async () => {
    served = await serve();
    const session = client(served.port);
    const bodies = await Promise.all(Array.from({ length: 300 }, (_, i) => request(session, '/echo', Buffer.from(`request ${i}`))));
    expect(bodies.map((b) => b.toString())).toEqual(Array.from({ length: 300 }, (_, i) => `request ${i}`));
  });

  it('tells the layer above when the client resets a stream, and keeps serving the connection', async () => {
    served = await serve();
    const session = client(served.port);
    const held = session.request({ ':method': 'POST', ':path': '/hold' });
    await waitFor('the stream to open on the server', () => (served?.streams.length === 1 ? true : undefined), 5_000, 10);
    held.close(constants.NGHTTP2_CANCEL);
    await waitFor('the reset to reach the stream', () => (served?.resets.length === 1 ? true : undefined), 5_000, 10);
    expect((await request(session, '/echo', Buffer.from('still here'))).toString()).toBe('still here');
  });

  it('acknowledges a PING with its payload', async () => {
    served = await serve();
    const session = client(served.port);
    const payload = Buffer.from('12345678');
    await new Promise((resolve) => session.once('connect', resolve));
    const acked = await new Promise<Buffer>((resolve, reject) => {
      session.ping(payload, (err, _duration, echoed) => (err === null ? resolve(echoed) : reject(err)));
    });
    expect(acked.equals(payload)).toBe(true);
  });

  it('ends the connection with GOAWAY(PROTOCOL_ERROR) on DATA for stream 0', async () => {
    served = await serve();
    const socket = createConnection(served.port, '127.0.0.1');
    const reader = new FrameReader();
    const frames: { type: number; payload: Buffer }[] = [];
    socket.on('data', (chunk: Buffer) => frames.push(...reader.push(chunk)));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(Buffer.concat([CLIENT_PREFACE, frameOf(0x4, 0, 0, Buffer.alloc(0)), frameOf(0x0, 0, 0, Buffer.from('x'))]));
    await closed;
    const goaway = frames.find((f) => f.type === 0x7);
    expect(goaway?.payload.readUInt32BE(4)).toBe(1);
  });
});
