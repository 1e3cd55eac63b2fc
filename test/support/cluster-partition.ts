// Network partitions between members without root: each member
// advertises the port of a TCP proxy owned by the test, and listens for peers on another port
// behind it. Member IDs hash the advertised peer URLs, so every member must see the same URLs;
// one proxy per member is therefore all there is, and a link is told apart by the dialing
// member: the proxy finds the process that owns the connecting socket through /proc (Linux).
// Both directions of a link are cut because etcd sends on streams that the *receiver* dials.
// A cut link drops bytes and keeps connections open, as a real partition does; healing resets
// them so members redial at once.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Tracked {
  readonly source: number | null; // the dialing member, null when it could not be told
  readonly target: number;
  readonly client: Socket;
  readonly upstream: Socket;
  isDropping: boolean;
}

/** Delays chunks on every link by a uniform draw in [minMs, maxMs], keeping each direction in order. */
export interface LinkDelay {
  readonly minMs: number;
  readonly maxMs: number;
}

/** Connections per proxy are few (a handful of streams per peer); this bounds a leak. */
const CONNECTIONS_MAX = 2_000;

export class PeerProxies {
  private readonly servers: Server[] = [];
  private readonly connections = new Set<Tracked>();
  private readonly isolated = new Set<number>();
  private linkDelay: LinkDelay | null = null;

  constructor(
    private readonly listenPorts: readonly number[],
    private readonly targetPorts: readonly number[],
    private readonly pidOf: (index: number) => number | undefined,
  ) {}

  async start(): Promise<void> {
    for (const [target, port] of this.listenPorts.entries()) {
      const server = createServer((client) => this.accept(target, client));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
      });
      this.servers.push(server);
    }
  }

  /** Cuts every link to and from member `index` (both directions). */
  isolate(index: number): void {
    this.isolated.add(index);
    for (const tracked of this.connections) {
      if (this.isCut(tracked.source, tracked.target)) tracked.isDropping = true;
    }
  }

  /**
   * Delays every byte on every link (a slow network, not a lossy one): each chunk is passed on
   * after a delay drawn from the range, never before an earlier chunk of the same direction.
   */
  delayAll(delay: LinkDelay): void {
    this.linkDelay = delay;
  }

  /**
   * Restores every link. By default connections that were dropping bytes are reset so members
   * redial; with `resetConnections: false` they carry bytes again from where they are, the bytes
   * dropped meanwhile lost (a middlebox that blackholed a live connection and let it go): the
   * members must notice the broken stream themselves.
   */
  heal(options: { readonly resetConnections?: boolean } = {}): void {
    this.isolated.clear();
    this.linkDelay = null;
    for (const tracked of [...this.connections]) {
      if (!tracked.isDropping) continue;
      if (options.resetConnections === false) {
        tracked.isDropping = false;
      } else {
        tracked.client.destroy();
        tracked.upstream.destroy();
      }
    }
  }

  /** Connections seen whose dialing member could not be identified (should stay 0). */
  unidentified = 0;

  async close(): Promise<void> {
    for (const tracked of this.connections) {
      tracked.client.destroy();
      tracked.upstream.destroy();
    }
    this.connections.clear();
    await Promise.all(this.servers.map((server) =>
      new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  private isCut(source: number | null, target: number): boolean {
    if (this.isolated.has(target)) return true;
    if (source === null) return false;
    return this.isolated.has(source);
  }

  private accept(target: number, client: Socket): void {
    if (this.connections.size >= CONNECTIONS_MAX) {
      client.destroy();
      return;
    }
    const source = this.identify(client.remotePort ?? 0, client.localPort ?? 0);
    if (source === null) this.unidentified += 1;
    const upstream = connect({ host: '127.0.0.1', port: this.targetPorts[target] as number });
    const tracked: Tracked = { source, target, client, upstream, isDropping: this.isCut(source, target) };
    this.connections.add(tracked);
    const pipe = (from: Socket, to: Socket): void => {
      let lastAtMs = 0;
      from.on('data', (chunk: Buffer) => {
        if (tracked.isDropping) return;
        const delay = this.linkDelay;
        if (delay === null && lastAtMs <= Date.now()) {
          to.write(chunk);
          return;
        }
        const drawnMs = delay === null ? 0 : delay.minMs + Math.random() * (delay.maxMs - delay.minMs);
        lastAtMs = Math.max(lastAtMs, Date.now() + drawnMs);
        setTimeout(() => { if (!to.destroyed) to.write(chunk); }, lastAtMs - Date.now());
      });
      from.on('close', () => {
        this.connections.delete(tracked);
        to.destroy();
      });
      from.on('error', () => from.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }

  /** The member whose process owns the socket 127.0.0.1:remotePort -> 127.0.0.1:localPort. */
  private identify(remotePort: number, localPort: number): number | null {
    const inode = socketInode(remotePort, localPort);
    if (inode === null) return null;
    const wanted = `socket:[${inode}]`;
    for (let index = 0; index < this.listenPorts.length; index++) {
      const pid = this.pidOf(index);
      if (pid === undefined) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === wanted) return index;
        } catch {
          // The fd closed while we looked.
        }
      }
    }
    return null;
  }
}

/** The inode of the socket whose local port is `port` and remote port is `peerPort`. */
function socketInode(port: number, peerPort: number): string | null {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const remote = `:${peerPort.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines: string[];
    try {
      lines = readFileSync(table, 'utf8').split('\n');
    } catch {
      continue;
    }
    for (const line of lines.slice(1)) {
      const fields = line.trim().split(/\s+/);
      const localAddress = fields[1];
      const remoteAddress = fields[2];
      if (localAddress?.endsWith(local) === true && remoteAddress?.endsWith(remote) === true) {
        return fields[9] ?? null;
      }
    }
  }
  return null;
}
