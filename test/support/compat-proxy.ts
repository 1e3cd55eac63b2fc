// A TCP proxy in front of a store, so a test can cut every client connection at once (the
// clients then reconnect through the same port), as etcd3's own test/util.ts Proxy does.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.js';

export class CutProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  private isRefusing = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = createServer((client) => this.accept(client));
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection; with `refuse`, new ones are dropped until `restore()`. */
  cut(refuse = false): void {
    this.isRefusing = refuse;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.isRefusing = false;
  }

  async close(): Promise<void> {
    this.cut(true);
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.isRefusing) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort });
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
