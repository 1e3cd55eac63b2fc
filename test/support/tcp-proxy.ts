import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from './ports.js';

/**
 * A TCP proxy on 127.0.0.1 in front of one target, able to blackhole traffic: bytes are swallowed
 * in both directions while connections stay open, as on a cut network path (the etcd3 client's own
 * tests use the same trick). restore() drops the connections so clients redial cleanly.
 */
export interface TcpProxy {
  readonly endpoint: string;
  blackhole(): void;
  /** Holds every byte from the target back by `ms` (order kept); requests still go through at once. */
  delayResponses(ms: number): void;
  restore(): void;
  close(): Promise<void>;
}

/** `port` reopens a proxy on the port of one closed earlier (a store that comes back). */
export async function startTcpProxy(targetHost: string, targetPort: number, port?: number): Promise<TcpProxy> {
  port ??= await freePort();
  const sockets = new Set<Socket>();
  let isBlackholed = false;
  let responseDelayMs = 0;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from: Socket, to: Socket, isResponse: boolean): void => {
      let lastReleaseMs = 0;
      from.on('data', (chunk: Buffer) => {
        if (isBlackholed) return;
        if (!isResponse || responseDelayMs === 0) {
          to.write(chunk);
          return;
        }
        // Never before a chunk that arrived earlier: one release time per chunk, non-decreasing.
        lastReleaseMs = Math.max(Date.now() + responseDelayMs, lastReleaseMs);
        setTimeout(() => { if (!to.destroyed) to.write(chunk); }, lastReleaseMs - Date.now());
      });
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
      from.on('error', () => from.destroy());
    };
    pipe(client, upstream, false);
    pipe(upstream, client, true);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    endpoint: `127.0.0.1:${port}`,
    blackhole: () => { isBlackholed = true; },
    delayResponses: (ms) => { responseDelayMs = ms; },
    restore: () => {
      isBlackholed = false;
      responseDelayMs = 0;
      for (const socket of sockets) socket.destroy();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
