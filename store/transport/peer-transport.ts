import {
  status, type MethodDefinition, type ServerReadableStream, type ServiceDefinition, type handleUnaryCall, type sendUnaryData,
  type ServerUnaryCall, type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { GrpcH2Server } from '../api/grpc/grpc-h2-server.js';
import type { RegisteredMethod } from '../api/gateway/service-registry.js';
import type { Logger } from 'pino';
import type { Message, MemberId } from '../raft/types.js';
import { serverTlsOptions, type TlsMaterial } from '../tls/tls-config.js';
import {
  decodeFrame, encodeFrame, type HashKVRequest, type HashKVResponse, type KvHashResult, type LeaseBatchRequest,
  type LeaseBatchResponse, type LeaseRenewRequest, type LeaseRenewResponse, type PeerFrame,
} from './peer-codec.js';
import { closeSync, createReadStream, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { PeerChannel, type PeerCall, type PeerChannelOptions } from './peer-channel.js';
import { RAFT_FRAME_MAGIC, decodeRaftFrame, encodeRaftFrame } from './raft-frame-codec.js';
import { badCertificate, peerCertificateRefusal } from '../tls/peer-identity.js';
import { decodeSnapshotRef, encodeSnapshotRef, type SnapshotFileRef } from '../snapshot/snapshot-file.js';

const identity = (b: Buffer): Buffer => b;

const PEER_SERVICE_NAME = 'etcron.peer.Raft';

/** The peer service: a stream of Raft messages per sender, and lease calls forwarded to the leader. */
const PEER_SERVICE: ServiceDefinition = {
  Send: {
    path: '/etcron.peer.Raft/Send', requestStream: true, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  /**
   * Send with frames in the binary layout (raft-frame-codec.ts). A member of an earlier build
   * answers UNIMPLEMENTED, and is then sent V8 frames on Send.
   */
  SendFrames: {
    path: '/etcron.peer.Raft/SendFrames', requestStream: true, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  Lease: {
    path: '/etcron.peer.Raft/Lease', requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  /** Several lease calls in one (see leaseCall). */
  LeaseBatch: {
    path: '/etcron.peer.Raft/LeaseBatch', requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  Members: {
    path: '/etcron.peer.Raft/Members', requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  /** A peer's HashKV at a revision, for a member checking its data before it serves. */
  HashKV: {
    path: '/etcron.peer.Raft/HashKV', requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  /** A snapshot message: a header frame (the message, its file's size), then the file in chunks. */
  Snapshot: {
    path: '/etcron.peer.Raft/Snapshot', requestStream: true, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
};

interface PendingLeaseCall {
  readonly request: Omit<LeaseRenewRequest, 'clusterId'>;
  /** Date.now() by which the caller gives up on this call. */
  readonly deadline: number;
  resolve(response: LeaseRenewResponse): void;
  reject(err: unknown): void;
}

/** Why Raft streams are refused while a member checks its data at start. */
const RAFT_HELD_DETAILS = 'member is starting: initial corruption check in progress';

/** Bytes of a snapshot file per message on the Snapshot stream. */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

interface SnapshotHeader {
  readonly clusterId: bigint;
  readonly from: bigint;
  readonly to: bigint;
  /** The snap message, its data left out (it named a file on the sender's disk). */
  readonly message: Message;
  readonly bytes: number;
}

/** What a member joining with --initial-cluster-state existing learns from a peer. */
export interface ClusterView {
  readonly clusterId: bigint;
  readonly members: readonly { readonly id: MemberId; readonly name: string; readonly peerUrls: readonly string[]; readonly isLearner: boolean }[];
}

/**
 * A snapshot whose data is the database itself (not a file reference) still travels in one frame;
 * file snapshots go in chunks over the Snapshot stream and know no such limit.
 */
const PEER_MESSAGE_BYTES_MAX = 2 ** 31 - 1;

export interface PeerHandlers {
  /** A message from a peer; the transport has already checked cluster and member IDs. */
  receive(message: Message): void;
  leaseRequest(request: LeaseRenewRequest): Promise<LeaseRenewResponse>;
  /** The cluster as this member knows it, for members joining it. */
  clusterView(): ClusterView;
  /** This member's HashKV at `revision` (0: its current one). */
  hashKV(revision: number): Promise<KvHashResult>;
}

export interface PeerAddress {
  readonly id: MemberId;
  readonly url: string; // http://host:port or https://host:port
}

interface PeerLink {
  readonly channel: PeerChannel;
  readonly url: string;
  stream: PeerCall | null;
  /** Whether `stream` takes binary frames (SendFrames) or V8 ones (Send). */
  isStreamBinary: boolean;
  /** The peer answered SendFrames with UNIMPLEMENTED: an earlier build, sent V8 frames. */
  isBinaryRefused: boolean;
}

/**
 * A peer connection that stops carrying bytes without closing (a blackholing middlebox, a
 * half-open connection) would hold a Raft stream forever: writes queue and nothing fails. Both
 * ends ping every 2 s while connected and drop a connection whose ping is not answered within
 * 3 s, so such a link is replaced within about 5 s, as etcd's 5 s peer read timeout does.
 */
const PEER_KEEPALIVE = { intervalMs: 2_000, timeoutMs: 3_000 } as const;
/** Between attempts to reach a peer that is down: 100 ms, doubling to 1 s. */
const PEER_DIAL_BACKOFF = { initialMs: 100, maxMs: 1_000 } as const;

/**
 * Raft messages between members over gRPC on the peer URLs. One client stream per peer keeps
 * messages in order; a broken stream is reported to Raft as 'unreachable' and reopened on the
 * next send. Frames from another cluster or an unknown member are refused with a clear error.
 */
export class PeerTransport {
  /** The peer service on our own HTTP/2 server connection (as the client port's gRPC). */
  private readonly server: GrpcH2Server;
  private readonly listeners: NetServer[] = [];
  private readonly links = new Map<MemberId, PeerLink>();
  /** Lease calls waiting for the end of this event-loop turn, by leader (see leaseCall). */
  private readonly leaseBatches = new Map<MemberId, PendingLeaseCall[]>();
  /** The last TLS failure logged per peer: a refused handshake repeats on every reconnect. */
  private readonly tlsFailures = new Map<MemberId, string>();
  private closed = false;
  /** The last peer certificate refusal logged (a refused member retries every few ms). */
  private lastRefusal: string | null = null;
  /**
   * While set, Raft traffic is neither taken nor sent (HashKV and Members still are): a member
   * checking its data at start stays out of the cluster's Raft group until the check passes.
   */
  private isRaftHeld = false;

  constructor(
    private readonly self: MemberId,
    private readonly clusterId: bigint,
    private peers: readonly PeerAddress[],
    private readonly handlers: PeerHandlers,
    private readonly onUnreachable: (peer: MemberId) => void,
    /** Raft needs the fate of every snapshot it sent: delivered to the stream, or failed. */
    private readonly onSnapshotStatus: (peer: MemberId, failed: boolean) => void,
    private readonly log: Logger,
    /** --peer-* TLS, for https:// peer URLs (listening and dialling); null without peer TLS. */
    private readonly tls: TlsMaterial | null = null,
    /** Where snapshot files from the leader are received; null keeps them out (none expected). */
    private readonly snapshotDir: string | null = null,
  ) {
    const impl: UntypedServiceImplementation = {
      Send: (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onStream(call, callback),
      SendFrames: (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onStream(call, callback),
      Lease: ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onLease(call, callback)) as handleUnaryCall<Buffer, Buffer>,
      LeaseBatch: ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onLeaseBatch(call, callback)) as handleUnaryCall<Buffer, Buffer>,
      Members: ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const refusal = this.refusePeerCertificate(call);
        if (refusal !== null) callback({ code: status.UNAUTHENTICATED, details: badCertificate(refusal) });
        else callback(null, encodeFrame(this.handlers.clusterView()));
      }) as handleUnaryCall<Buffer, Buffer>,
      Snapshot: (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onSnapshotStream(call, callback),
      HashKV: ((call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.onHashKV(call, callback)) as handleUnaryCall<Buffer, Buffer>,
    };
    const methods = new Map<string, RegisteredMethod>();
    for (const [name, definition] of Object.entries(PEER_SERVICE)) {
      const handler = impl[name];
      if (handler !== undefined) methods.set(definition.path, { definition: definition as MethodDefinition<unknown, unknown>, handler });
    }
    this.server = new GrpcH2Server({
      lookup: (path) => methods.get(path),
      isService: (service) => service === PEER_SERVICE_NAME,
      receiveBytesMax: PEER_MESSAGE_BYTES_MAX,
      maxConcurrentStreams: null,
      log,
      keepalive: PEER_KEEPALIVE,
    });
    this.connectAll();
  }

  /** Dials every peer now, as etcd keeps a stream to each: reachability is known before it matters. */
  private connectAll(): void {
    for (const peer of this.peers) if (peer.id !== this.self) this.link(peer.id);
  }

  /** Listens on each peer URL: https:// ones with the peer certificate, http:// ones plain. */
  async listen(urls: readonly string[]): Promise<void> {
    for (const url of urls) {
      const target = new URL(url);
      const serve = (socket: Socket): void => this.server.serve(socket);
      const listener = target.protocol === 'https:' ? this.secureListener(serve) : createNetServer({ noDelay: true }, serve);
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(Number(target.port), target.hostname, () => {
          listener.removeListener('error', reject);
          resolve();
        });
      });
      this.listeners.push(listener);
    }
  }

  /** Under --peer-client-cert-auth a peer without a certificate from the peer CA fails the handshake. */
  private secureListener(serve: (socket: Socket) => void): NetServer {
    if (this.tls === null) throw new Error('https peer URL without peer TLS material'); // resolveTls refuses this first
    const tls = this.tls;
    const server = createTlsServer({
      noDelay: true,
      ...serverTlsOptions(tls),
      ALPNProtocols: ['h2'],
    }, (socket) => {
      socket.on('error', () => socket.destroy());
      serve(socket);
    });
    server.on('tlsClientError', (err: Error, socket) => {
      this.log.warn({ remote: socket.remoteAddress, err: err.message.trim() }, 'rejected peer connection');
    });
    return server;
  }

  /**
   * A call from a member whose certificate is not the allowed one is refused (etcd refuses the
   * handshake; grpc-js offers no hook there, so the refusal comes with the first call).
   */
  private refusePeerCertificate(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } }): string | null {
    const allowed = this.tls?.allowedPeer ?? null;
    if (allowed === null) return null;
    const refusal = peerCertificateRefusal(allowed, call.getAuthContext().sslPeerCertificate);
    if (refusal !== null && this.lastRefusal !== refusal) {
      this.lastRefusal = refusal;
      this.log.warn({ err: refusal }, 'rejected connection from a peer (tls: bad certificate)');
    }
    return refusal;
  }

  private refuse(frameClusterId: bigint, from: bigint): string | null {
    if (frameClusterId !== this.clusterId) {
      return `cluster ID mismatch: this member belongs to ${this.clusterId.toString(16)}, the sender to ${frameClusterId.toString(16)}`;
    }
    if (!this.peers.some((p) => p.id === from)) return `member ${from.toString(16)} is not a member of cluster ${this.clusterId.toString(16)}`;
    return null;
  }

  private onStream(call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const refusal = this.refusePeerCertificate(call);
    if (refusal !== null) {
      callback({ code: status.UNAUTHENTICATED, details: badCertificate(refusal) });
      return;
    }
    if (this.isRaftHeld) {
      callback({ code: status.UNAVAILABLE, details: RAFT_HELD_DETAILS });
      return;
    }
    let failed = false;
    call.on('data', (data: Buffer) => {
      if (failed) return;
      let frame: PeerFrame;
      try {
        frame = data[0] === RAFT_FRAME_MAGIC ? decodeRaftFrame(data) : decodeFrame<PeerFrame>(data);
      } catch {
        failed = true;
        callback({ code: status.INVALID_ARGUMENT, details: 'malformed peer frame' });
        return;
      }
      const refusal = this.refuse(frame.clusterId, frame.from) ?? (frame.to === this.self ? null : `frame for member ${frame.to.toString(16)} reached ${this.self.toString(16)}`);
      if (refusal !== null) {
        failed = true;
        this.log.warn({ from: frame.from.toString(16) }, refusal);
        callback({ code: status.FAILED_PRECONDITION, details: refusal });
        return;
      }
      for (const message of frame.messages) this.handlers.receive(message);
    });
    call.on('end', () => { if (!failed) callback(null, Buffer.alloc(0)); });
    call.on('error', () => {});
  }

  /**
   * Receives a snapshot file into the snapshot directory, one chunk at a time (never the whole
   * file in memory), fsyncs it, and only then hands Raft the message, its data now naming the
   * local copy. A stream that ends early or carries the wrong size is refused
   * and its partial file removed.
   */
  private onSnapshotStream(call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const refusal = this.refusePeerCertificate(call);
    if (refusal !== null) {
      callback({ code: status.UNAUTHENTICATED, details: badCertificate(refusal) });
      return;
    }
    if (this.isRaftHeld) {
      callback({ code: status.UNAVAILABLE, details: RAFT_HELD_DETAILS });
      return;
    }
    let header: SnapshotHeader | null = null;
    let fd: number | null = null;
    let path = '';
    let received = 0;
    let isDone = false;
    const fail = (code: status, details: string): void => {
      if (isDone) return;
      isDone = true;
      if (fd !== null) closeSync(fd);
      fd = null;
      if (path !== '') rmSync(path, { force: true });
      callback({ code, details });
    };
    call.on('data', (data: Buffer) => {
      if (isDone) return;
      if (header === null) {
        try {
          header = decodeFrame<SnapshotHeader>(data);
        } catch {
          fail(status.INVALID_ARGUMENT, 'malformed snapshot header');
          return;
        }
        const refusal = this.refuse(header.clusterId, header.from) ?? (header.to === this.self ? null : 'snapshot for another member');
        if (refusal !== null || this.snapshotDir === null) {
          fail(status.FAILED_PRECONDITION, refusal ?? 'this member takes no snapshot files');
          return;
        }
        const index = header.message.snapshot?.metadata.index ?? 0;
        path = join(this.snapshotDir, `received-${header.from.toString(16)}-${index}.db`);
        fd = openSync(path, 'w');
        return;
      }
      if (fd === null) return;
      // Synchronous writes keep chunks in order and bound memory to one chunk; the page cache
      // absorbs them, and one fsync at the end makes the file durable before Raft sees it.
      writeSync(fd, data);
      received += data.length;
      if (received > header.bytes) fail(status.INVALID_ARGUMENT, 'snapshot longer than announced');
    });
    call.on('end', () => {
      if (isDone) return;
      if (header === null || fd === null || received !== header.bytes) {
        fail(status.INVALID_ARGUMENT, `snapshot cut short (${received} of ${header?.bytes ?? '?'} bytes)`);
        return;
      }
      fsyncSync(fd);
      closeSync(fd);
      fd = null;
      isDone = true;
      const snapshot = header.message.snapshot;
      if (snapshot !== undefined && snapshot !== null) {
        this.handlers.receive({ ...header.message, snapshot: { ...snapshot, data: encodeSnapshotRef({ path, bytes: received }) } });
      }
      callback(null, Buffer.alloc(0));
    });
    call.on('error', () => fail(status.CANCELLED, 'snapshot stream failed'));
  }

  /**
   * Streams a snapshot message whose data names a local file: the header, then the file in
   * chunks, honouring the stream's backpressure. Raft learns the outcome (delivered or failed)
   * when the follower has the file durable and has taken the message.
   */
  private sendSnapshotFile(peer: MemberId, link: PeerLink, message: Message, ref: SnapshotFileRef): void {
    const call = link.channel.clientStream('/etcron.peer.Raft/Snapshot',
      (err) => {
        if (err !== null) {
          this.log.warn({ peer: peer.toString(16), err: err.details }, 'sending a snapshot failed');
          if (!this.closed) this.onUnreachable(peer);
        }
        if (!this.closed) this.onSnapshotStatus(peer, err !== null);
      });
    call.on('error', () => {});
    const snapshot = message.snapshot;
    if (snapshot === undefined || snapshot === null) return;
    const header: SnapshotHeader = {
      clusterId: this.clusterId, from: this.self, to: peer, bytes: ref.bytes,
      message: { ...message, snapshot: { ...snapshot, data: new Uint8Array(0) } },
    };
    call.write(encodeFrame(header));
    const pump = async (): Promise<void> => {
      for await (const chunk of createReadStream(ref.path, { highWaterMark: SNAPSHOT_CHUNK_BYTES })) {
        // A failed call has said so through its callback; the file is closed as the loop ends.
        if (call.isOver) return;
        if (!call.write(chunk as Buffer)) await call.whenWritable();
      }
      call.end();
    };
    pump().catch((err: unknown) => {
      this.log.warn({ peer: peer.toString(16), err }, 'snapshot file unreadable');
      call.cancel();
    });
    this.log.info({ peer: peer.toString(16), index: snapshot.metadata.index, bytes: ref.bytes }, 'sending snapshot');
  }

  private onLease(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    this.serveUnary<LeaseRenewRequest, LeaseRenewResponse>(call, callback, 'lease request',
      (request) => (request.clusterId === this.clusterId ? null : 'cluster ID mismatch'),
      (request) => this.handlers.leaseRequest(request));
  }

  private onLeaseBatch(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    this.serveUnary<LeaseBatchRequest, LeaseBatchResponse>(call, callback, 'lease batch',
      (request) => (request.clusterId === this.clusterId ? null : 'cluster ID mismatch'),
      async (request) => ({
        responses: await Promise.all(request.requests.map((one) => this.handlers.leaseRequest({ ...one, clusterId: this.clusterId }).then(
          (response) => response,
          (err: unknown): LeaseRenewResponse => ({ ok: false, ttl: 0, grantedTtl: 0, error: err instanceof Error ? err.message : String(err) }),
        ))),
      }));
  }

  private onHashKV(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    this.serveUnary<HashKVRequest, HashKVResponse>(call, callback, 'hash kv request',
      (request) => this.refuse(request.clusterId, request.from),
      async (request) => ({ ...await this.handlers.hashKV(request.revision), memberId: this.self }));
  }

  /**
   * The peer unary calls' common path: the peer's certificate, the frame, the caller (`refuse`
   * names why not), then `answer`, whose failure is UNAVAILABLE with its message.
   */
  private serveUnary<Request, Response extends object>(
    call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>, what: string,
    refuse: (request: Request) => string | null, answer: (request: Request) => Promise<Response>,
  ): void {
    const refusal = this.refusePeerCertificate(call);
    if (refusal !== null) {
      callback({ code: status.UNAUTHENTICATED, details: badCertificate(refusal) });
      return;
    }
    let request: Request;
    try {
      request = decodeFrame<Request>(call.request);
    } catch {
      callback({ code: status.INVALID_ARGUMENT, details: `malformed ${what}` });
      return;
    }
    const refused = refuse(request);
    if (refused !== null) {
      callback({ code: status.FAILED_PRECONDITION, details: refused });
      return;
    }
    answer(request).then(
      (response) => callback(null, encodeFrame(response)),
      (err: unknown) => callback({ code: status.UNAVAILABLE, details: err instanceof Error ? err.message : String(err) }),
    );
  }

  private link(peer: MemberId): PeerLink | undefined {
    let link = this.links.get(peer);
    if (link !== undefined) return link;
    const address = this.peers.find((p) => p.id === peer);
    if (address === undefined) return undefined;
    const target = new URL(address.url);
    const channel = new PeerChannel({ target, ...peerDialOptions(target, this.tls, true), keepalive: PEER_KEEPALIVE, backoff: PEER_DIAL_BACKOFF, log: this.log });
    link = { channel, url: address.url, stream: null, isStreamBinary: false, isBinaryRefused: false };
    this.links.set(peer, link);
    return link;
  }

  /**
   * Since when (ms on performance.now's clock) the connection to `peer` has been up without a
   * break, or null if it is not up. Links are dialled on first use; asking dials one.
   */
  activeSince(peer: MemberId): number | null {
    return this.link(peer)?.channel.activeSinceMs ?? null;
  }

  /**
   * A handshake the peer refused (or we refused: its certificate did not verify) would otherwise
   * show only as an unreachable peer. Logged once per distinct reason, as etcd logs rejections.
   */
  private noteTlsFailure(peer: MemberId, details: string): void {
    if (!/SSL|TLS|certificate/i.test(details) || this.tlsFailures.get(peer) === details) return;
    this.tlsFailures.set(peer, details);
    this.log.warn({ peer: peer.toString(16), err: details }, 'peer TLS handshake failed');
  }

  /** Sends messages, grouped per destination, each group as one frame on that peer's stream. */
  send(messages: readonly Message[]): void {
    // Held: Raft sees the messages as lost, and retries them (or newer ones) once released.
    if (this.closed || this.isRaftHeld || messages.length === 0) return;
    const byPeer = new Map<MemberId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to) ?? [];
      list.push(m);
      byPeer.set(m.to, list);
    }
    for (let [peer, list] of byPeer) {
      const link = this.link(peer);
      if (link === undefined) continue;
      if (link.stream === null) {
        const isBinary = !link.isBinaryRefused;
        const stream = link.channel.clientStream(isBinary ? '/etcron.peer.Raft/SendFrames' : '/etcron.peer.Raft/Send', (err) => {
          if (link.stream === stream) link.stream = null;
          if (isBinary && err?.code === status.UNIMPLEMENTED) {
            this.log.info({ peer: peer.toString(16) }, 'peer runs an earlier build: sending it V8-encoded Raft frames');
            link.isBinaryRefused = true;
          }
          if (err !== null && !this.closed) {
            if (err.code === status.FAILED_PRECONDITION) this.log.error({ peer: peer.toString(16), err: err.details }, 'peer refused us');
            this.noteTlsFailure(peer, err.details);
            this.onUnreachable(peer);
          }
        });
        link.stream = stream;
        link.isStreamBinary = isBinary;
      }
      // File snapshots take their own stream; everything else (and in-memory snapshots) a frame.
      const fileSnapshots = list.flatMap((m) => {
        const ref = m.type === 'snap' && m.snapshot !== undefined && m.snapshot !== null ? decodeSnapshotRef(m.snapshot.data) : null;
        return ref === null ? [] : [{ message: m, ref }];
      });
      for (const { message, ref } of fileSnapshots) this.sendSnapshotFile(peer, link, message, ref);
      if (fileSnapshots.length > 0) list = list.filter((m) => !fileSnapshots.some((f) => f.message === m));
      if (list.length === 0) continue;
      const hasSnapshot = list.some((m) => m.type === 'snap');
      const peerFrame: PeerFrame = { clusterId: this.clusterId, from: this.self, to: peer, messages: list };
      const frame = link.isStreamBinary ? encodeRaftFrame(peerFrame) : encodeFrame(peerFrame);
      if (!hasSnapshot) {
        link.stream.write(frame);
      } else {
        link.stream.write(frame, (err: Error | null | undefined) => this.onSnapshotStatus(peer, err !== null && err !== undefined));
      }
    }
  }

  /**
   * The members to talk to, after a membership change: links to members no longer listed (or
   * listed under another URL) are closed; new ones are dialled on first use.
   */
  setPeers(peers: readonly PeerAddress[]): void {
    this.peers = peers;
    for (const [id, link] of this.links) {
      const address = peers.find((p) => p.id === id);
      if (address !== undefined && link.url === address.url) continue;
      link.stream?.end();
      link.channel.close();
      this.links.delete(id);
    }
    this.connectAll();
  }

  /**
   * Forwards a lease call to the member `leader` (keep-alives reach the leader's lessor). The
   * calls of one event-loop turn to one leader go as one LeaseBatch call: a follower serving
   * thousands of keep-alives a second would otherwise make a peer call for each.
   */
  leaseCall(leader: MemberId, request: Omit<LeaseRenewRequest, 'clusterId'>, timeoutMs: number): Promise<LeaseRenewResponse> {
    return new Promise((resolve, reject) => {
      let batch = this.leaseBatches.get(leader);
      if (batch === undefined) {
        batch = [];
        this.leaseBatches.set(leader, batch);
        setImmediate(() => this.sendLeaseBatch(leader));
      }
      batch.push({ request, deadline: Date.now() + timeoutMs, resolve, reject });
    });
  }

  private sendLeaseBatch(leader: MemberId): void {
    const batch = this.leaseBatches.get(leader) ?? [];
    this.leaseBatches.delete(leader);
    const single = (pending: PendingLeaseCall): void => {
      this.unaryCall<LeaseRenewResponse>(leader, '/etcron.peer.Raft/Lease', { ...pending.request, clusterId: this.clusterId },
        Math.max(0, pending.deadline - Date.now()), 'unknown leader').then(pending.resolve, pending.reject);
    };
    const first = batch[0];
    if (batch.length === 1 && first !== undefined) {
      single(first);
      return;
    }
    const request: LeaseBatchRequest = { clusterId: this.clusterId, requests: batch.map((pending) => pending.request) };
    const timeoutMs = Math.max(0, Math.min(...batch.map((pending) => pending.deadline)) - Date.now());
    this.unaryCall<LeaseBatchResponse>(leader, '/etcron.peer.Raft/LeaseBatch', request, timeoutMs, 'unknown leader').then(
      (answer) => batch.forEach((pending, i) => {
        const response = answer.responses[i];
        if (response?.ok === true) pending.resolve(response);
        else pending.reject(new Error(response?.error ?? 'no answer in the lease batch'));
      }),
      (err: unknown) => {
        // A leader of an earlier build has no LeaseBatch: ask it one call at a time.
        if ((err as { code?: unknown } | null)?.code === status.UNIMPLEMENTED) batch.forEach(single);
        else for (const pending of batch) pending.reject(err);
      },
    );
  }

  /** Refuses Raft traffic both ways until releaseRaft(); other peer calls are served meanwhile. */
  holdRaft(): void {
    this.isRaftHeld = true;
  }

  releaseRaft(): void {
    this.isRaftHeld = false;
  }

  /** Asks member `peer` for its HashKV at `revision`, within `timeoutMs`. */
  hashKVCall(peer: MemberId, revision: number, timeoutMs: number): Promise<HashKVResponse> {
    const request: HashKVRequest = { clusterId: this.clusterId, from: this.self, revision };
    return this.unaryCall<HashKVResponse>(peer, '/etcron.peer.Raft/HashKV', request, timeoutMs, `unknown member ${peer.toString(16)}`);
  }

  /** One unary peer call to `peer`: the request framed, the answer unframed, within `timeoutMs`. */
  private unaryCall<Response>(peer: MemberId, path: string, request: object, timeoutMs: number, unknownPeer: string): Promise<Response> {
    const link = this.link(peer);
    if (link === undefined) return Promise.reject(new Error(unknownPeer));
    return link.channel.unary(path, encodeFrame(request), timeoutMs).then((answer) => decodeFrame<Response>(answer));
  }

  close(): void {
    this.closed = true;
    for (const link of this.links.values()) {
      link.stream?.end();
      link.channel.close();
    }
    for (const listener of this.listeners) listener.close();
    this.server.close();
  }
}

/**
 * Dialling an https:// peer presents our peer certificate (etcd uses one for both directions)
 * and checks the peer's against the peer CA; with `checksAllowedPeer` also the allowed CN or
 * hostname (members of the cluster; a joining member asking for the cluster does not). Auto TLS
 * certificates are self-signed, so, as in etcd, a member with --peer-auto-tls does not verify its
 * peers' chain, but still holds their certificate to the allowed CN or hostname (etcd checks it
 * in both directions whatever the chain; its auto TLS certificates have no CN). Null for http://
 * peers.
 */
export function peerDialOptions(target: URL, tls: TlsMaterial | null, checksAllowedPeer: boolean): Pick<PeerChannelOptions, 'tls' | 'refuseServer'> {
  if (target.protocol !== 'https:') return { tls: null };
  if (tls === null) return { tls: {} };
  const isVerified = !tls.isSelfSigned;
  const options: ConnectionOptions = {
    ...(tls.ca === null ? {} : { ca: tls.ca }), key: tls.key, cert: tls.cert, rejectUnauthorized: isVerified,
  };
  const allowed = tls.allowedPeer;
  if (!checksAllowedPeer || allowed === null) return { tls: options };
  // Node calls checkServerIdentity only for a chain it verified: a self-signed link checks after
  // the handshake instead.
  if (!isVerified) return { tls: options, refuseServer: (cert) => peerCertificateRefusal(allowed, cert) };
  return {
    tls: {
      ...options,
      // The usual host check, then the allowed CN or hostname (both directions, as in etcd).
      checkServerIdentity: (host, cert) => {
        const hostError = checkServerIdentity(host, cert);
        if (hostError !== undefined) return hostError;
        const refusal = peerCertificateRefusal(allowed, cert);
        return refusal === null ? undefined : new Error(badCertificate(refusal));
      },
    },
  };
}

/**
 * Asks the members at `peerUrls`, one after the other, for the cluster they form (a member
 * joining with --initial-cluster-state existing). Resolves with the first answer.
 */
export async function fetchClusterView(peerUrls: readonly string[], tls: TlsMaterial | null, timeoutMs: number, log: Logger): Promise<ClusterView> {
  const errors: string[] = [];
  for (const url of peerUrls) {
    const target = new URL(url);
    const channel = new PeerChannel({ target, ...peerDialOptions(target, tls, false), keepalive: null, backoff: PEER_DIAL_BACKOFF, log });
    try {
      return decodeFrame<ClusterView>(await channel.unary('/etcron.peer.Raft/Members', Buffer.alloc(0), timeoutMs));
    } catch (err) {
      errors.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      channel.close();
    }
  }
  throw new Error(`could not retrieve the cluster from its members (${errors.join('; ')})`);
}
