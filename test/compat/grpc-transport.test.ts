// gRPC over HTTP/2 on the client port, frame by frame, against real etcd 3.4 (grpc-go 1.33): what
// a gRPC client relies on from the transport — flow control, PING/SETTINGS acknowledgements, many
// streams on one connection, deadlines, cancellation, status codes and their texts, trailers-only
// answers, metadata, CONTINUATION, connection errors and compression. Every case runs on etcd and
// on the subject through a raw HTTP/2 client (../support/raw-h2-client.ts) that sees each frame.
// Malformed request messages are covered by differential.test.ts (its raw requests).
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../store/api/h2/frames.js';
import { encodeLiterals } from '../../store/api/h2/hpack.js';
import { CompatClient, child, int, list, methodCodec, type Msg } from '../support/compat-client.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import {
  FLAGS, FRAME, H2_ERROR, RawH2Connection, SETTING, grpcFrame, headerValue,
  type GrpcReply, type RawH2Options,
} from '../support/raw-h2-client.js';

const KV_PUT = methodCodec('KV', 'Put');
const KV_RANGE = methodCodec('KV', 'Range');
const WATCH = methodCodec('Watch', 'Watch');
const KEEP_ALIVE = methodCodec('Lease', 'LeaseKeepAlive');

/** etcd's default --max-request-bytes plus gRPC's 512 KiB allowance: the receive limit. */
const RECEIVE_LIMIT = 1.5 * 1024 * 1024 + 512 * 1024;
const BIG_VALUES = 6;
const BIG_VALUE_BYTES = 1024 * 1024;
/** The largest DATA payload for a client that keeps SETTINGS_MAX_FRAME_SIZE at its default. */
const DEFAULT_MAX_FRAME = 16_384;

const bigValue = (i: number): Buffer => Buffer.alloc(BIG_VALUE_BYTES, 0x61 + i);
const bigKey = (i: number): Buffer => Buffer.from(`big/${i}`);
const allBig: Msg = { key: Buffer.from('big/'), range_end: Buffer.from('big0') };

/** Whether a grpc-go-only expectation applies to `store` (always on etcd, the oracle). */
function putMessage(key: string): Buffer {
  return KV_PUT.encode({ key: Buffer.from(key), value: Buffer.from('v') });
}

/** One unary call: request headers (plus `extra`), the message, END_STREAM; then its reply. */
async function unary(
  connection: RawH2Connection, path: string, message: Buffer, extra: [string, string][] = [],
): Promise<GrpcReply> {
  const id = connection.startCall(path, extra);
  connection.sendMessage(id, message, true);
  return connection.reply(id);
}

async function putStatus(connection: RawH2Connection, key: string): Promise<number | null> {
  return (await unary(connection, KV_PUT.path, putMessage(key))).status;
}

function expectBigRange(label: string, reply: GrpcReply): void {
  expect(reply.status, `${label}: ${reply.message}`).toBe(0);
  expect(reply.messages, label).toHaveLength(1);
  const kvs = list(KV_RANGE.decode(reply.messages[0] as Buffer), 'kvs');
  expect(kvs.map((kv) => (kv['key'] as Buffer).toString()), label)
    .toEqual(Array.from({ length: BIG_VALUES }, (_, i) => bigKey(i).toString()));
  kvs.forEach((kv, i) => {
    expect((kv['value'] as Buffer).equals(bigValue(i)), `${label}: value ${i}`).toBe(true);
  });
}

describe('gRPC over HTTP/2 on the client port, as grpc-go serves it', () => {
  let stores: StoreProcess[] = [];
  const connections: RawH2Connection[] = [];

  beforeAll(async () => {
    stores = await Promise.all([startReference(), startSubject()]);
    await Promise.all(stores.map(async (store) => {
      const client = new CompatClient(store.endpoint);
      try {
        for (let i = 0; i < BIG_VALUES; i++) {
          const put = await client.put({ key: bigKey(i), value: bigValue(i) });
          if (!put.ok) throw new Error(`${store.kind}: put big/${i}: ${put.message}`);
        }
      } finally {
        client.close();
      }
    }));
  }, 60_000);
  afterAll(async () => {
    for (const connection of connections) connection.close();
    await disposeStores(...stores);
  });

  async function open(store: StoreProcess, options: RawH2Options = {}): Promise<RawH2Connection> {
    const connection = await RawH2Connection.open(store.endpoint, options);
    connections.push(connection);
    return connection;
  }

  it('streams a 6 MiB answer through small windows, within frame size and windows', async () => {
    for (const store of stores) {
      const connection = await open(store, { initialWindowSize: 32_768, autoWindowUpdate: true });
      expectBigRange(store.kind, await unary(connection, KV_RANGE.path, KV_RANGE.encode(allBig)));
      expect(connection.violations, store.kind).toEqual([]);
      expect(connection.largestDataFrame, store.kind).toBeLessThanOrEqual(DEFAULT_MAX_FRAME);
    }
  });

  it('sends no DATA beyond the windows granted, and the rest once granted', async () => {
    const streamWindow = 16_384;
    const connectionWindow = 65_535; // every connection's initial window (RFC 9113 §6.9.2)
    for (const store of stores) {
      const connection = await open(store, { initialWindowSize: streamWindow });
      const id = connection.startCall(KV_RANGE.path);
      connection.sendMessage(id, KV_RANGE.encode(allBig), true);
      const stream = connection.stream(id);
      /** Waits for the server to use what it may, then checks that nothing more comes. */
      const expectReceived = async (bytes: number, what: string): Promise<void> => {
        const label = `${store.kind}: ${what}`;
        await connection.until(label, () => stream.dataBytes >= bytes, 10_000);
        await connection.barrier(); // DATA sent before the PING's answer has been read by now
        expect(stream.dataBytes, label).toBe(bytes);
      };
      await expectReceived(streamWindow, 'the stream window used');
      connection.grant(id, 20_000);
      await expectReceived(streamWindow + 20_000, 'a grant of 20000 bytes used');
      // The stream may take far more now, the connection cannot: what it has left is all.
      connection.grant(id, 1 << 30);
      await expectReceived(connectionWindow, 'the connection window used');
      connection.grant(0, 1 << 30);
      expectBigRange(store.kind, await connection.reply(id));
      expect(connection.violations, store.kind).toEqual([]);
    }
  });

  it('acknowledges PING with its 8 bytes, and every SETTINGS', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const payload = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04]);
      connection.ping(payload);
      await connection.until(`${store.kind}: PING acknowledged with its payload`,
        () => connection.pingAcks.some((ack) => ack.equals(payload)));
      await connection.until(`${store.kind}: the preface's SETTINGS acknowledged`,
        () => connection.settingsAcks === 1);
      connection.settings([[SETTING.initialWindowSize, 100_000]]);
      await connection.until(`${store.kind}: a later SETTINGS acknowledged`,
        () => connection.settingsAcks === 2);
      expect(await putStatus(connection, 'after-settings'), store.kind).toBe(0);
    }
  });

  it('answers 200 puts sent on one connection before anything is read', async () => {
    const count = 200;
    for (const store of stores) {
      const connection = await open(store);
      const ids: number[] = [];
      const frames: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const id = connection.openStream();
        ids.push(id);
        const block = encodeLiterals(connection.requestHeaders(KV_PUT.path));
        frames.push(encodeFrame(FRAME.headers, FLAGS.endHeaders, id, block));
        const message = grpcFrame(putMessage(`many/${i}`));
        frames.push(encodeFrame(FRAME.data, FLAGS.endStream, id, message));
      }
      connection.write(Buffer.concat(frames));
      const replies = await Promise.all(ids.map((id) => connection.reply(id)));
      const failed = replies.filter((reply) => reply.status !== 0);
      expect(failed.map((reply) => reply.message), store.kind).toEqual([]);
      const revisions = replies.map((reply) =>
        int(child(KV_PUT.decode(reply.messages[0] as Buffer), 'header'), 'revision'));
      expect(new Set(revisions).size, `${store.kind}: one revision per put`).toBe(count);
    }
  });

  it('ends a call when its grpc-timeout passes, not before', async () => {
    const timeout: [string, string][] = [['grpc-timeout', '300m']];
    for (const store of stores) {
      const connection = await open(store);
      // A watch: its created answer comes first, then the status when the deadline passes.
      const watchStarted = Date.now();
      const watch = connection.startCall(WATCH.path, timeout);
      const create = WATCH.encode({ create_request: { key: Buffer.from('deadline') } });
      connection.sendMessage(watch, create, false);
      const watched = await connection.reply(watch, 5_000);
      const watchMs = Date.now() - watchStarted;
      // A keep-alive stream that never gets a request: nothing but the status.
      const keepAliveStarted = Date.now();
      const kept = await connection.reply(connection.startCall(KEEP_ALIVE.path, timeout), 5_000);
      const keepAliveMs = Date.now() - keepAliveStarted;
      const calls = [['watch', watched, watchMs], ['keep-alive', kept, keepAliveMs]] as const;
      for (const [name, reply, ms] of calls) {
        const label = `${store.kind} ${name}: ${reply.message}`;
        // etcd's Watch and LeaseKeepAlive handlers race the stream's receive error (code 4)
        // against returning the context's own error (UNKNOWN, 2): etcd answers either.
        expect([2, 4], label).toContain(reply.status);
        expect(ms, `${label}: not before the deadline`).toBeGreaterThanOrEqual(295);
        expect(ms, `${label}: soon after it`).toBeLessThan(3_000);
        expect(reply.message, label).toBe('context deadline exceeded');
      }
      expect(watched.messages, `${store.kind}: the watch was created first`).toHaveLength(1);
      expect(kept.isTrailersOnly, store.kind).toBe(true);
      expect(await putStatus(connection, 'after-deadline'), store.kind).toBe(0);
    }
  });

  it('stops a watch reset with RST_STREAM(CANCEL) and keeps the connection serving', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const watch = connection.startCall(WATCH.path);
      const create = WATCH.encode({ create_request: { key: Buffer.from('reset') } });
      connection.sendMessage(watch, create, false);
      const stream = connection.stream(watch);
      await connection.until(`${store.kind}: watch created`, () => stream.dataBytes > 0);
      const createdBytes = stream.dataBytes;
      connection.rstStream(watch, H2_ERROR.cancel);
      // The put writes the watched key: without the reset its event would follow.
      expect(await putStatus(connection, 'reset'), `${store.kind}: a put, same connection`).toBe(0);
      await connection.barrier();
      expect(stream.dataBytes, `${store.kind}: no event after the reset`).toBe(createdBytes);
      expect(connection.goAway, store.kind).toBeNull();
      expect(connection.violations, store.kind).toEqual([]);
    }
  });

  it('answers an unknown method or service with UNIMPLEMENTED', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const method = await unary(connection, '/etcdserverpb.KV/Nope', Buffer.alloc(0));
      const service = await unary(connection, '/nope.Svc/Do', Buffer.alloc(0));
      expect([method.status, service.status], store.kind).toEqual([12, 12]);
      expect(method.message, store.kind).toBe('unknown method Nope for service etcdserverpb.KV');
      expect(service.message, store.kind).toBe('unknown service nope.Svc');
    }
  });

  it('refuses a request message over the receive limit with RESOURCE_EXHAUSTED', async () => {
    const declared = 3 * 1024 * 1024;
    const text = `grpc: received message larger than max (${declared} vs. ${RECEIVE_LIMIT})`;
    for (const store of stores) {
      // Sent whole, by a gRPC client library.
      const client = new CompatClient(store.endpoint);
      try {
        expect(await client.callRaw('KV', 'Put', Buffer.alloc(declared)), store.kind)
          .toEqual({ ok: false, code: 'RESOURCE_EXHAUSTED', message: text });
      } finally {
        client.close();
      }
      // Only the length prefix: grpc-go answers without waiting for the body.
      const connection = await open(store);
      const id = connection.startCall(KV_PUT.path);
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(declared, 1);
      connection.sendData(id, prefix, false);
      const reply = await connection.reply(id, 5_000);
      expect([reply.status, reply.message], store.kind).toEqual([8, text]);
    }
  });

  it('answers an error before any message trailers-only: one HEADERS, END_STREAM', async () => {
    const futureRange = KV_RANGE.encode({ key: Buffer.from('a'), revision: '1000000' });
    for (const store of stores) {
      const connection = await open(store);
      const reply = await unary(connection, KV_RANGE.path, futureRange);
      expect([reply.status, reply.message], store.kind)
        .toEqual([11, 'etcdserver: mvcc: required revision is a future revision']);
      expect(reply.isTrailersOnly, store.kind).toBe(true);
      const only = reply.headerBlocks[0];
      expect(headerValue(only, ':status'), store.kind).toBe('200');
      expect(headerValue(only, 'content-type'), store.kind).toMatch(/^application\/grpc/);
    }
  });

  it('serves calls carrying unknown custom and -bin metadata', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const reply = await unary(connection, KV_PUT.path, putMessage('metadata'), [
        ['x-custom-key', 'some value'],
        ['x-trace-bin', Buffer.from([0, 1, 2, 0xfe, 0xff]).toString('base64')],
        ['x-unpadded-bin', 'AAEC'],
        ['user-agent', 'raw-h2-test/1.0'],
      ]);
      expect(reply.status, `${store.kind}: ${reply.message}`).toBe(0);
      expect(reply.messages, store.kind).toHaveLength(1);
    }
  });

  it('accepts a header block split over HEADERS and CONTINUATION frames', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const id = connection.openStream();
      // 20 KB of metadata needs more than one 16 KiB frame; the cuts fall inside strings.
      const large: [string, string][] = [['x-large', 'v'.repeat(20_000)]];
      const block = encodeLiterals(connection.requestHeaders(KV_PUT.path, large));
      const cuts = [0, 10, 16_000, block.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        const type = i === 0 ? FRAME.headers : FRAME.continuation;
        const flags = i + 2 === cuts.length ? FLAGS.endHeaders : 0;
        connection.write(encodeFrame(type, flags, id, block.subarray(cuts[i], cuts[i + 1])));
      }
      connection.sendMessage(id, putMessage('continuation'), true);
      const reply = await connection.reply(id);
      expect(reply.status, `${store.kind}: ${reply.message}`).toBe(0);
      expect(reply.messages, store.kind).toHaveLength(1);
    }
  });

  it('closes a connection that sends a frame it may not, and only that one', async () => {
    const offences: readonly (readonly [string, Buffer])[] = [
      ['DATA on stream 0', encodeFrame(FRAME.data, 0, 0, Buffer.from('x'))],
      ['HTTP/1.1 after the preface', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ];
    for (const store of stores) {
      const bystander = await open(store);
      await bystander.barrier();
      for (const [offence, bytes] of offences) {
        const offender = await open(store);
        await offender.barrier();
        offender.write(bytes);
        const label = `${store.kind}, ${offence}`;
        await offender.until(`${label}: connection closed`, () => offender.isClosed);
        // grpc-go 1.33 closes without a GOAWAY; RFC 9113 has a server send one first.
        if (offence.startsWith('DATA')) {
          expect(offender.goAway?.code ?? H2_ERROR.protocol, label).toBe(H2_ERROR.protocol);
        }
      }
      expect(await putStatus(bystander, 'bystander'), `${store.kind}: an older connection`).toBe(0);
      const fresh = await open(store);
      expect(await putStatus(fresh, 'fresh'), `${store.kind}: a new connection`).toBe(0);
    }
  });

  it('refuses grpc-encoding gzip, and a compressed flag without an encoding, as etcd', async () => {
    for (const store of stores) {
      const connection = await open(store);
      const gzipped = connection.startCall(KV_PUT.path, [['grpc-encoding', 'gzip']]);
      connection.sendMessage(gzipped, gzipSync(putMessage('gzip')), true, true);
      const gzip = await connection.reply(gzipped);
      const flagged = connection.startCall(KV_PUT.path);
      connection.sendMessage(flagged, putMessage('flagged'), true, true);
      const flag = await connection.reply(flagged);
      expect([gzip.status, gzip.message], store.kind)
        .toEqual([12, 'grpc: Decompressor is not installed for grpc-encoding "gzip"']);
      expect([flag.status, flag.message], store.kind)
        .toEqual([13, 'grpc: compressed flag set with identity or empty encoding']);
      // etcd offers no compression to clients.
      expect(headerValue(gzip.headerBlocks[0], 'grpc-accept-encoding'), store.kind).toBe('');
    }
  });
});
