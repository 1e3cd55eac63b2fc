/**
 * A minimal protobuf reader for the few messages etcron decodes by hand (etcd's KeyValue and
 * Lease records in a snapshot). Yields (field, value) pairs: varints as bigint, length-delimited
 * fields as Buffer views; fixed-width fields are skipped, as none of ours uses them.
 */
export class ProtoFormatError extends Error {
  override readonly name = 'ProtoFormatError';
}

export type ProtoField = { readonly field: number; readonly varint: bigint } | { readonly field: number; readonly bytes: Buffer };

function readVarint(buffer: Buffer, at: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < buffer.length && i < at + 10; i++) {
    const byte = buffer[i] as number;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, i + 1];
    shift += 7n;
  }
  throw new ProtoFormatError('truncated varint');
}

export function* protoFields(buffer: Buffer): Generator<ProtoField> {
  let at = 0;
  while (at < buffer.length) {
    const [tag, afterTag] = readVarint(buffer, at);
    const field = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    at = afterTag;
    if (wireType === 0) {
      const [value, next] = readVarint(buffer, at);
      at = next;
      yield { field, varint: value };
    } else if (wireType === 2) {
      const [length, next] = readVarint(buffer, at);
      const end = next + Number(length);
      if (end > buffer.length) throw new ProtoFormatError('length-delimited field past the end');
      at = end;
      yield { field, bytes: buffer.subarray(next, end) };
    } else if (wireType === 1) {
      at += 8;
    } else if (wireType === 5) {
      at += 4;
    } else {
      throw new ProtoFormatError(`unsupported wire type ${wireType}`);
    }
  }
}
