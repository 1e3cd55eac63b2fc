import { describe, expect, it } from 'vitest';
import { OutputBuffer } from '../../store/api/h2/output-buffer.js';
import { FrameReader, type Frame } from '../../store/api/h2/frames.js';

const MAX_PAYLOAD = 16_384;

/** gRPC's framing of one message: not compressed, 4-byte big-endian length, the bytes. */
function prefixed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Adjacent DATA frames of one stream, flags 0, merged: what a client reads as the stream's bytes. */
function streamUnits(frames: readonly { type: number; flags: number; streamId: number; payload: Buffer }[]): { type: number; streamId: number; payload: string }[] {
  const units: { type: number; flags: number; streamId: number; payload: Buffer }[] = [];
  for (const f of frames) {
    const last = units[units.length - 1];
    if (last !== undefined && f.type === 0 && last.type === 0 && last.flags === 0 && f.flags === 0 && last.streamId === f.streamId) {
      last.payload = Buffer.concat([last.payload, f.payload]);
    } else {
      units.push({ type: f.type, flags: f.flags, streamId: f.streamId, payload: f.payload });
    }
  }
  return units.map((u) => ({ type: u.type, streamId: u.streamId, payload: u.payload.toString('hex') }));
}

function framesOf(taken: Buffer[]): Frame[] {
  return new FrameReader(1 << 24).push(Buffer.concat(taken));
}

describe('a connection\'s output buffer', () => {
  it('keeps every frame, message and raw write intact and in order across slabs, whatever the sizes', () => {
    const output = new OutputBuffer();
    const expected: { type: number; flags: number; streamId: number; payload: Buffer }[] = [];
    const taken: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const size = (i * 7919) % 40_000; // small and large payloads, slabs filled unevenly
      const payload = Buffer.alloc(size, i % 256);
      const streamId = i % 7 === 0 ? 3 : 1;
      if (i % 5 === 0) {
        // A raw write (as SETTINGS or GOAWAY are queued): a whole frame built elsewhere.
        const frame = Buffer.alloc(9 + 6, 0);
        frame.writeUIntBE(6, 0, 3);
        frame[3] = 0x4;
        frame.fill(i % 256, 9);
        output.append(frame);
        expected.push({ type: 0x4, flags: 0, streamId: 0, payload: frame.subarray(9) });
      } else if (i % 3 === 0) {
        const small = payload.subarray(0, size % 9000);
        output.lengthPrefixedParts(0x0, 0, streamId, [small.subarray(0, small.length >> 1), small.subarray(small.length >> 1)], small.length, MAX_PAYLOAD);
        expected.push({ type: 0x0, flags: 0, streamId, payload: prefixed(small) });
      } else if (i % 2 === 0) {
        output.lengthPrefixedFrame(0x0, 0, streamId, payload, 1 << 24);
        expected.push({ type: 0x0, flags: 0, streamId, payload: prefixed(payload) });
      } else {
        output.frame(0x0, 0, streamId, payload.subarray(0, Math.min(size, MAX_PAYLOAD)));
        expected.push({ type: 0x0, flags: 0, streamId, payload: payload.subarray(0, Math.min(size, MAX_PAYLOAD)) });
      }
      if (i % 11 === 0) taken.push(...output.take());
    }
    taken.push(...output.take());
    expect(streamUnits(framesOf(taken))).toEqual(streamUnits(expected));
  });

  it('joins consecutive small messages of one stream into DATA frames no larger than the client allows', () => {
    const output = new OutputBuffer();
    const messages = Array.from({ length: 200 }, (_, i) => Buffer.alloc(100 + (i % 50), i));
    for (const m of messages.slice(0, 150)) output.lengthPrefixedParts(0x0, 0, 1, [m], m.length, MAX_PAYLOAD);
    // Another stream's message, then a frame of stream 1 with END_STREAM: neither joins.
    output.lengthPrefixedFrame(0x0, 0, 3, messages[0] as Buffer, MAX_PAYLOAD);
    for (const m of messages.slice(150)) output.lengthPrefixedFrame(0x0, 0, 1, m, MAX_PAYLOAD);
    output.frame(0x0, 0x1, 1, Buffer.alloc(0));
    const frames = framesOf(output.take());

    const stream1 = frames.filter((f) => f.streamId === 1 && f.flags === 0);
    const bytes1 = messages.slice(0, 150).reduce((n, m) => n + 5 + m.length, 0);
    expect(stream1.every((f) => f.payload.length <= MAX_PAYLOAD)).toBe(true);
    // 150 messages of ~130 bytes: two frames (16 KiB and the rest), then the 50 after stream 3's.
    expect(stream1.length).toBe(Math.ceil(bytes1 / MAX_PAYLOAD) + 1);
    expect(frames.map((f) => f.streamId)).toEqual([...Array<number>(stream1.length - 1).fill(1), 3, 1, 1]);
    expect(frames[frames.length - 1]?.flags).toBe(0x1);
    // No message was cut at a frame boundary it should not have been: the stream's bytes read back whole.
    expect(Buffer.concat(stream1.map((f) => f.payload))).toEqual(Buffer.concat([...messages.slice(0, 150), ...messages.slice(150)].map(prefixed)));
  });

  it('never joins a message to bytes already taken for the socket', () => {
    const output = new OutputBuffer();
    const first = Buffer.alloc(64, 1);
    output.lengthPrefixedFrame(0x0, 0, 1, first, MAX_PAYLOAD);
    const before = output.take();
    const snapshot = Buffer.concat(before);
    output.lengthPrefixedFrame(0x0, 0, 1, Buffer.alloc(64, 2), MAX_PAYLOAD);
    const after = output.take();
    expect(Buffer.concat(before)).toEqual(snapshot);
    expect(framesOf([...before, ...after]).map((f) => f.payload.length)).toEqual([69, 69]);
  });
});
