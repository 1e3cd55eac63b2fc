import { describe, expect, it } from 'vitest';
import { OutputBuffer } from '../../store/api/h2/output-buffer.js';
import { FrameReader } from '../../store/api/h2/frames.js';

describe('a connection\'s output buffer', () => {
  it('keeps every frame and raw write intact and in order across slabs, whatever the sizes', () => {
    const output = new OutputBuffer();
    const expected: { type: number; payload: string }[] = [];
    const taken: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const size = (i * 7919) % 40_000; // small and large payloads, slabs filled unevenly
      const payload = Buffer.alloc(size, i % 256);
      if (i % 5 === 0) {
        // A raw write (as SETTINGS or GOAWAY are queued): a whole frame built elsewhere.
        const frame = Buffer.alloc(9 + 6, 0);
        frame.writeUIntBE(6, 0, 3);
        frame[3] = 0x4;
        frame.fill(i % 256, 9);
        output.append(frame);
        expected.push({ type: 0x4, payload: frame.subarray(9).toString('hex') });
      } else if (i % 3 === 0) {
        output.lengthPrefixedParts(0x0, 0, 1, [payload.subarray(0, size >> 1), payload.subarray(size >> 1)], size);
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(size, 1);
        expected.push({ type: 0x0, payload: Buffer.concat([prefix, payload]).toString('hex') });
      } else {
        output.frame(0x0, 0, 1, payload.subarray(0, Math.min(size, 16_384)));
        expected.push({ type: 0x0, payload: payload.subarray(0, Math.min(size, 16_384)).toString('hex') });
      }
      if (i % 11 === 0) taken.push(...output.take());
    }
    taken.push(...output.take());
    const frames = new FrameReader(1 << 24).push(Buffer.concat(taken));
    expect(frames.map((f) => ({ type: f.type, payload: f.payload.toString('hex') }))).toEqual(expected);
  });
});
