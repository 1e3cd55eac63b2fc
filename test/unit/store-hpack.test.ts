import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackError, encodeLiterals } from '../../store/api/h2/hpack.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

// RFC 7541 Appendix C: the same three requests, without and with Huffman coding; the decoder's
// dynamic table carries over from one request to the next.
describe('HPACK decoding (RFC 7541 Appendix C)', () => {
  const requests = [
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
    [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
  ];

  it('C.3: requests without Huffman coding', () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex('828684410f7777772e6578616d706c652e636f6d'))).toEqual(requests[0]);
    expect(decoder.decode(hex('828684be58086e6f2d6361636865'))).toEqual(requests[1]);
    expect(decoder.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'))).toEqual(requests[2]);
  });

  it('C.4: requests with Huffman coding', () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex('828684418cf1e3c2e5f23a6ba0ab90f4ff'))).toEqual(requests[0]);
    expect(decoder.decode(hex('828684be5886a8eb10649cbf'))).toEqual(requests[1]);
    expect(decoder.decode(hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'))).toEqual(requests[2]);
  });

  it('C.2.4: an indexed static field; C.2.3: a never-indexed literal', () => {
    expect(new HpackDecoder().decode(hex('82'))).toEqual([[':method', 'GET']]);
    expect(new HpackDecoder().decode(hex('100870617373776f726406736563726574'))).toEqual([['password', 'secret']]);
  });

  it('evicts by size (C.5 with a 256-byte table)', () => {
    const decoder = new HpackDecoder(256);
    decoder.decode(hex('4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d'));
    // The second response refers to entries by index; the oldest (":status: 302") was evicted.
    expect(decoder.decode(hex('4803333037c1c0bf'))).toEqual([
      [':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com'],
    ]);
  });

  it('refuses what is not HPACK: an index past the table, a cut string, bad Huffman padding', () => {
    expect(() => new HpackDecoder().decode(hex('ff00'))).toThrow(HpackError);
    expect(() => new HpackDecoder().decode(hex('410f7777'))).toThrow(HpackError);
    expect(() => new HpackDecoder().decode(hex('418100'))).toThrow(HpackError);
  });

  it('writes literals that decode back to the same list, with no table on either side', () => {
    const headers: [string, string][] = [[':authority', '127.0.0.1:2379'], ['te', 'trailers'], ['x-long', 'v'.repeat(300)]];
    const decoder = new HpackDecoder();
    expect(decoder.decode(encodeLiterals(headers))).toEqual(headers);
    expect(decoder.decode(encodeLiterals(headers))).toEqual(headers);
  });
});
