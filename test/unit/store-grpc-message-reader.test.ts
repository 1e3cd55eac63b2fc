import { describe, expect, it } from 'vitest';
import { MessageFramingError, MessageReader } from '../../store/api/grpc/message-reader.js';
import { parseGrpcTimeout, percentEncode } from '../../store/api/grpc/grpc-wire.js';

/** A message as gRPC frames it: flag 0, big-endian length, the bytes. */
function prefixedMessage(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

const messages = [Buffer.from('first request'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from('last')];
const stream = Buffer.concat(messages.map(prefixedMessage));

describe('gRPC messages cut out of a stream of DATA', () => {
  it('finds every message whatever the DATA frames split, in one frame or byte by byte', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const reader = new MessageReader(1024);
      const read = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))];
      expect(read.map((m) => m.bytes.toString('hex')), `cut at ${cut}`).toEqual(messages.map((m) => m.toString('hex')));
    }
    const reader = new MessageReader(1024);
    const bytewise = [...stream].flatMap((byte) => reader.push(Buffer.from([byte])));
    expect(bytewise.map((m) => m.bytes.toString('hex'))).toEqual(messages.map((m) => m.toString('hex')));
  });

  it('refuses a message from its length prefix when it is above the limit, before its body arrives', () => {
    const reader = new MessageReader(100);
    const prefix = Buffer.from([0, 0, 0, 0, 101]);
    expect(() => reader.push(prefix)).toThrow(MessageFramingError);
    try {
      new MessageReader(100).push(prefix);
    } catch (err) {
      expect(err).toMatchObject({ kind: 'too-large', declaredBytes: 101 });
    }
  });

  it('reports the compressed flag and refuses an unknown payload format', () => {
    const compressed = Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), Buffer.from('x')]);
    expect(new MessageReader(10).push(compressed)[0]?.isCompressed).toBe(true);
    expect(() => new MessageReader(10).push(Buffer.from([2, 0, 0, 0, 0]))).toThrow(/payload format 2/);
  });
});

describe('gRPC header values', () => {
  it('percent-encodes grpc-message as Go does: non-printable bytes and % only', () => {
    expect(percentEncode('etcdserver: key not found').toString()).toBe('etcdserver: key not found');
    expect(percentEncode('100% done\n').toString()).toBe('100%25 done%0A');
    expect(percentEncode('é').toString()).toBe('%C3%A9');
  });

  it('reads grpc-timeout in each unit and refuses malformed values', () => {
    expect(parseGrpcTimeout('5S')).toBe(5000);
    expect(parseGrpcTimeout('100m')).toBe(100);
    expect(parseGrpcTimeout('2M')).toBe(120_000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('2500u')).toBe(2.5);
    expect(parseGrpcTimeout('123456789S')).toBeNull();
    expect(parseGrpcTimeout('10x')).toBeNull();
    expect(parseGrpcTimeout('')).toBeNull();
  });
});
