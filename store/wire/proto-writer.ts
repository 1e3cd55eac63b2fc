/**
 * A minimal protobuf writer for the few messages etcron encodes by hand (watch responses on the
 * hot path, etcd's KeyValue bytes for HashKV). Proto3 rules: a zero or empty scalar is left out.
 * Small pieces are copied into a scratch buffer; large byte strings are kept by reference and
 * joined once at the end.
 */
export class ProtoWriter {
  private readonly parts: Buffer[] = [];
  private scratch = Buffer.allocUnsafe(64);
  private used = 0;

  varint(value: number | bigint): void {
    this.reserve(10);
    if (typeof value === 'number' && value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
      let rest = value;
      while (rest >= 0x80) {
        this.scratch[this.used++] = (rest % 0x80) | 0x80;
        rest = Math.floor(rest / 0x80);
      }
      this.scratch[this.used++] = rest;
      return;
    }
    // Negative int64s are written as their two's complement over 64 bits (ten bytes).
    let rest = BigInt.asUintN(64, BigInt(value));
    while (rest >= 0x80n) {
      this.scratch[this.used++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.scratch[this.used++] = Number(rest);
  }

  /** A varint field (int64, uint64, enum, bool), left out when zero. */
  uintField(field: number, value: number | bigint): void {
    if (value === 0 || value === 0n) return;
    this.varint(field * 8);
    this.varint(value);
  }

  /** A bytes field, left out when empty. */
  bytesField(field: number, bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.messageField(field, bytes);
  }

  /** A length-delimited field holding already-encoded bytes, written even when empty. */
  messageField(field: number, bytes: Buffer): void {
    this.varint(field * 8 + 2);
    this.varint(bytes.length);
    this.raw(bytes);
  }

  raw(bytes: Buffer): void {
    if (bytes.length <= 32) {
      this.reserve(bytes.length);
      bytes.copy(this.scratch, this.used);
      this.used += bytes.length;
      return;
    }
    this.flush();
    this.parts.push(bytes);
  }

  finish(): Buffer {
    this.flush();
    return this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.scratch.length) return;
    this.flush();
    if (bytes > this.scratch.length) this.scratch = Buffer.allocUnsafe(bytes);
  }

  private flush(): void {
    if (this.used === 0) return;
    this.parts.push(Buffer.from(this.scratch.subarray(0, this.used)));
    this.scratch = Buffer.allocUnsafe(64);
    this.used = 0;
  }
}
