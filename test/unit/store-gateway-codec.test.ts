// The JSON gateway's codec in isolation (issue #7). Expected texts are what etcd 3.4's gateway
// (Go encoding/json, base64.StdEncoding, golang/protobuf jsonpb) answered for the same input.
import { describe, expect, it } from 'vitest';
import { decodeGoBase64 } from '../../store/api/gateway/go-base64.js';
import { GoJsonError, parseJsonWhole, readJsonValue } from '../../store/api/gateway/go-json.js';
import {
  jsonToMessage,
  messageToJson,
  type ProtoObject,
} from '../../store/api/gateway/jsonpb-codec.js';
import { methodTypes } from '../../store/api/gateway/proto-types.js';

function jsonError(text: string): string {
  try {
    readJsonValue(text, 0);
  } catch (err) {
    if (err instanceof GoJsonError) return err.message;
    throw err;
  }
  return 'no error';
}

function base64Error(text: string): string {
  try {
    decodeGoBase64(text);
  } catch (err) {
    if (err instanceof GoJsonError) return err.message;
    throw err;
  }
  return 'no error';
}

describe('Go-worded JSON reading', () => {
  it('names the offending character and what the scanner was looking for, as encoding/json does', () => {
    expect(jsonError('{bad')).toBe(
      "invalid character 'b' looking for beginning of object key string",
    );
    expect(jsonError('{"a" 1}')).toBe("invalid character '1' after object key");
    expect(jsonError('{"a":1 "b":2}')).toBe("invalid character '\"' after object key:value pair");
    expect(jsonError('[1 2]')).toBe("invalid character '2' after array element");
    expect(jsonError('{"a":tru}')).toBe("invalid character '}' in literal true (expecting 'e')");
    expect(jsonError('{"a":x}')).toBe("invalid character 'x' looking for beginning of value");
    expect(jsonError('{"a":"b')).toBe('unexpected EOF');
  });

  it('reads one value and leaves what follows (json.Decoder), or refuses trailing text (json.Unmarshal)', () => {
    expect(readJsonValue('{"a":1} tail', 0)?.end).toBe(7);
    expect(readJsonValue('  ', 0)).toBeNull();
    expect(() => parseJsonWhole('1 x')).toThrow("invalid character 'x' after top-level value");
    expect(() => parseJsonWhole('')).toThrow('unexpected end of JSON input');
  });
});

describe('Go-worded base64', () => {
  it('reports the byte offset base64.StdEncoding reports', () => {
    expect(decodeGoBase64('Zm9v').toString()).toBe('foo');
    expect(decodeGoBase64('Zm8=').toString()).toBe('fo');
    expect(decodeGoBase64('').length).toBe(0);
    expect(base64Error('!!!')).toBe('illegal base64 data at input byte 0');
    expect(base64Error('Zm9v-_')).toBe('illegal base64 data at input byte 4');
    expect(base64Error('Zm9')).toBe('illegal base64 data at input byte 0');
    expect(base64Error('Zm8=x')).toBe('illegal base64 data at input byte 4');
  });
});

describe('jsonpb messages', () => {
  const range = methodTypes('/etcdserverpb.KV/Range');

  it('takes int64 as number or quoted string, enums by name or number, lowerCamel names, null as absent', () => {
    const parsed = parseJsonWhole(
      '{"key":"Zm9v","limit":"5","sort_order":"DESCEND","sortTarget":2,"revision":null}',
    );
    expect(jsonToMessage(range.request, parsed)).toEqual({
      key: Buffer.from('foo'),
      limit: '5',
      sort_order: 2,
      sort_target: 2,
    });
  });

  it("refuses with jsonpb's words", () => {
    const refusal = (text: string): string => {
      try {
        jsonToMessage(range.request, parseJsonWhole(text));
        return 'no error';
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      }
    };
    expect(refusal('{"limit":1.5}')).toBe(
      'json: cannot unmarshal number 1.5 into Go value of type int64',
    );
    expect(refusal('{"keys_only":"true"}')).toBe(
      'json: cannot unmarshal string into Go value of type bool',
    );
    expect(refusal('{"key":5}')).toBe(
      'json: cannot unmarshal number into Go value of type []uint8',
    );
    expect(refusal('{"sort_order":"WRONG"}')).toBe(
      'unknown value "WRONG" for enum etcdserverpb.RangeRequest_SortOrder',
    );
    expect(refusal('[]')).toBe(
      'json: cannot unmarshal array into Go value of type map[string]json.RawMessage',
    );
  });

  it('writes declared names, 64-bit integers as strings, bytes as base64, and leaves defaults out', () => {
    const response = range.response.decode(
      range.response
        .encode(
          range.response.fromObject({
            header: { revision: 7, raft_term: 2 },
            kvs: [
              {
                key: Buffer.from('foo'),
                value: Buffer.alloc(0),
                version: 1,
                create_revision: 7,
                mod_revision: 7,
                lease: 0,
              },
            ],
            more: false,
            count: 1,
          }),
        )
        .finish(),
    );
    expect(messageToJson(range.response, response as unknown as ProtoObject)).toBe(
      '{"header":{"revision":"7","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"7","mod_revision":"7","version":"1"}],"count":"1"}',
    );
  });
});
