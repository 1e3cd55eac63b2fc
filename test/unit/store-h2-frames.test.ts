import { describe, expect, it } from 'vitest';
import { FLAG, FRAME_PAYLOAD_BYTES_MAX, FRAME_TYPE, FrameReader, encodeFrame, headerBlockFrames, headersFragment } from '../../store/api/h2/frames.js';
import { HpackDecoder, encodeLiterals } from '../../store/api/h2/hpack.js';

describe('HTTP/2 frames for the :authority fix', () => {
  it('reads frames split anywhere across chunks, and keeps the rest', () => {
    const bytes = Buffer.concat([
      encodeFrame(FRAME_TYPE.settings, 0, 0, Buffer.alloc(6, 1)),
      encodeFrame(FRAME_TYPE.headers, FLAG.endHeaders, 1, Buffer.from('abc')),
    ]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const reader = new FrameReader();
      const frames = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))];
      expect(frames.map((f) => [f.type, f.streamId, f.payload.length])).toEqual([[FRAME_TYPE.settings, 0, 6], [FRAME_TYPE.headers, 1, 3]]);
      expect(reader.rest().length).toBe(0);
    }
  });

  it('finds the header block fragment under padding and priority', () => {
    const payload = Buffer.concat([Buffer.from([2]), Buffer.from([0, 0, 0, 3, 16]), Buffer.from('block'), Buffer.alloc(2)]);
    const [frame] = new FrameReader().push(encodeFrame(FRAME_TYPE.headers, FLAG.padded | FLAG.priority | FLAG.endHeaders, 5, payload));
    const { fragment, priority } = headersFragment(frame!);
    expect(fragment.toString()).toBe('block');
    expect([...priority!]).toEqual([0, 0, 0, 3, 16]);
  });

  it('writes a large block as HEADERS and CONTINUATION frames within the default size, END_HEADERS on the last', () => {
    const headers: [string, string][] = [[':authority', '127.0.0.1:2379'], ['x-big', 'v'.repeat(40_000)]];
    const block = encodeLiterals(headers);
    const frames = new FrameReader().push(Buffer.concat(headerBlockFrames(7, block, true, null)));
    expect(frames.map((f) => f.type)).toEqual([FRAME_TYPE.headers, FRAME_TYPE.continuation, FRAME_TYPE.continuation]);
    expect(frames.every((f) => f.payload.length <= FRAME_PAYLOAD_BYTES_MAX && f.streamId === 7)).toBe(true);
    expect(frames.map((f) => f.flags & FLAG.endHeaders)).toEqual([0, 0, FLAG.endHeaders]);
    expect(frames[0]!.flags & FLAG.endStream).toBe(FLAG.endStream);
    const joined = Buffer.concat(frames.map((f, i) => (i === 0 ? headersFragment(f).fragment : f.payload)));
    expect(new HpackDecoder().decode(joined)).toEqual(headers);
  });
});
