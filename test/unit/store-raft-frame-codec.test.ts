// Raft frames between members in the binary layout: every message type and field survives a round
// trip exactly (64-bit IDs, safe-integer terms and indexes, entry data, snapshots), damaged frames
// are refused, and a member sends V8 frames to a peer of an earlier build that lacks SendFrames.
import type { MethodDefinition, sendUnaryData, ServerReadableStream } from '@grpc/grpc-js';
import { createServer, type Server, type Socket } from 'node:net';
import { deserialize } from 'node:v8';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcH2Server } from '../../store/api/grpc/grpc-h2-server.js';
import type { RegisteredMethod } from '../../store/api/gateway/service-registry.js';
import type { Entry, Message, MessageType } from '../../store/raft/types.js';
import type { PeerFrame } from '../../store/transport/peer-codec.js';
import { PeerTransport } from '../../store/transport/peer-transport.js';
import { RaftFrameError, decodeRaftFrame, encodeRaftFrame } from '../../store/transport/raft-frame-codec.js';
import { waitFor } from '../support/ports.js';

const TYPES: readonly MessageType[] = [
  'hup', 'beat', 'prop', 'app', 'app-resp', 'vote', 'vote-resp', 'pre-vote', 'pre-vote-resp', 'snap',
  'heartbeat', 'heartbeat-resp', 'unreachable', 'snap-status', 'check-quorum', 'transfer-leader',
  'timeout-now', 'read-index', 'read-index-resp',
];

/** A small deterministic generator (xorshift32), so a failure can be replayed from its seed. */
function generator(seed: number): (below: number) => number {
  let state = seed >>> 0 || 1;
  return (below) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % below;
  };
}

function bytes(random: (below: number) => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => random(256));
}

function randomMessage(random: (below: number) => number, type: MessageType): Message {
  const big = (): bigint => (BigInt(random(2 ** 31)) << 33n) | BigInt(random(2 ** 31));
  const number = (): number => [0, 1, random(1000), Number.MAX_SAFE_INTEGER - random(10)][random(4)] as number;
  const entries: Entry[] = Array.from({ length: random(4) }, () => ({
    term: number(), index: number(), type: random(2) === 0 ? 'normal' : 'conf-change', data: bytes(random, random(300)),
  }));
  const snapshot = type === 'snap' ? {
    metadata: { index: number(), term: number(), confState: { voters: [big(), 2n ** 64n - 1n], learners: [big()] } },
    data: bytes(random, random(2000)),
  } : null;
  return {
    type, to: random(2) === 0 ? 2n ** 64n - 1n : big(), from: big(), term: number(), logTerm: number(), index: number(),
    entries, commit: number(), snapshot, reject: random(2) === 1, rejectHint: number(), context: bytes(random, random(3) * 8),
  };
}

describe('binary raft frames', () => {
  it('carry every message type and field exactly', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = generator(seed);
      const frame: PeerFrame = {
        clusterId: 0xfedcba9876543210n, from: 1n, to: 2n ** 64n - 2n,
        messages: Array.from({ length: 1 + random(5) }, () => randomMessage(random, TYPES[random(TYPES.length)] as MessageType)),
      };
      expect(decodeRaftFrame(encodeRaftFrame(frame)), `seed ${seed}`).toEqual(frame);
    }
  });

  it('gives entries data of their own, not views of the received bytes', () => {
    const message = randomMessage(generator(7), 'app');
    const encoded = encodeRaftFrame({ clusterId: 1n, from: 1n, to: 2n, messages: [{ ...message, entries: [{ term: 1, index: 1, type: 'normal', data: Uint8Array.from([1, 2, 3]) }] }] });
    const decoded = decodeRaftFrame(encoded);
    encoded.fill(0);
    expect([...(decoded.messages[0]?.entries[0]?.data ?? [])]).toEqual([1, 2, 3]);
  });

  it('refuses truncated, extended and unknown frames', () => {
    const encoded = encodeRaftFrame({ clusterId: 1n, from: 1n, to: 2n, messages: [randomMessage(generator(3), 'app'), randomMessage(generator(4), 'snap')] });
    for (let length = 0; length < encoded.length; length++) {
      expect(() => decodeRaftFrame(encoded.subarray(0, length)), `length ${length}`).toThrow(RaftFrameError);
    }
    expect(() => decodeRaftFrame(Buffer.concat([encoded, Buffer.from([0])]))).toThrow(RaftFrameError);
    const badType = Buffer.from(encoded);
    badType[29] = 200; // the first message's type code
    expect(() => decodeRaftFrame(badType)).toThrow(/unknown message type code/);
  });
});

describe('a member whose peer is of an earlier build', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  it('falls back to V8 frames on Send when SendFrames is unknown there', async () => {
    // The earlier build's peer service: Send only, V8 frames.
    const received: PeerFrame[] = [];
    const path = '/etcron.peer.Raft/Send';
    const identity = (b: Buffer): Buffer => b;
    const definition = {
      path, requestStream: true, responseStream: false,
      requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
    } as MethodDefinition<unknown, unknown>;
    const handler = ((call: ServerReadableStream<Buffer, Buffer>, _callback: sendUnaryData<Buffer>) => {
      call.on('data', (data: Buffer) => received.push(deserialize(data) as PeerFrame));
    }) as RegisteredMethod['handler'];
    const grpc = new GrpcH2Server({
      lookup: (p) => (p === path ? { definition, handler } : undefined), isService: (name) => name === 'etcron.peer.Raft',
      receiveBytesMax: 1 << 20, maxConcurrentStreams: null, log: pino({ level: 'silent' }),
    });
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      grpc.serve(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy();
      grpc.close();
      server.close();
    });
    const unreachable: bigint[] = [];
    const transport = new PeerTransport(1n, 7n, [{ id: 1n, url: 'http://127.0.0.1:1' }, { id: 2n, url: `http://127.0.0.1:${port}` }], {
      receive: () => {}, leaseRequest: () => Promise.reject(new Error('unused')),
      clusterView: () => ({ clusterId: 7n, members: [] }), hashKV: () => Promise.reject(new Error('unused')),
    }, (peer) => unreachable.push(peer), () => {}, pino({ level: 'silent' }));
    cleanups.push(() => transport.close());
    const message = randomMessage(generator(11), 'heartbeat');
    const heartbeat: Message = { ...message, to: 2n, from: 1n, snapshot: null };
    transport.send([heartbeat]);
    // The first stream asks for SendFrames and is refused; Raft hears the peer was unreachable.
    await waitFor('the refusal', () => (unreachable.includes(2n) ? true : undefined), 5_000);
    expect(received).toEqual([]);
    transport.send([heartbeat]);
    await waitFor('the V8 frame', () => (received.length > 0 ? true : undefined), 5_000);
    expect(received[0]).toEqual({ clusterId: 7n, from: 1n, to: 2n, messages: [heartbeat] });
  });
});
