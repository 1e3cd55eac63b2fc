/** A gRPC message as read off a stream: its bytes and whether the compressed flag was set. */
export interface ReceivedMessage {
  readonly bytes: Buffer;
  readonly isCompressed: boolean;
}

/** Why a stream's input cannot be read as gRPC messages. */
export class MessageFramingError extends Error {
  override readonly name = 'MessageFramingError';

  constructor(readonly kind: 'too-large' | 'bad-flag', readonly declaredBytes: number) {
    super(kind === 'too-large' ? `message of ${declaredBytes} bytes` : `payload format ${declaredBytes}`);
  }
}

/**
 * Cuts a stream's DATA into length-prefixed gRPC messages (1 flag byte, 4 length bytes). A message
 * whose declared length is above `bytesMax` is refused from its prefix, before its body is held.
 * Messages inside one DATA frame are views of it, not copies.
 */
export class MessageReader {
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** The current message's length once its prefix is read; -1 while reading the prefix. */
  private expected = -1;
  private isCompressed = false;

  constructor(private readonly bytesMax: number) {}

  /** The messages completed by `data`, in order; throws MessageFramingError. */
  push(data: Buffer): ReceivedMessage[] {
    const messages: ReceivedMessage[] = [];
    let at = 0;
    if (this.partBytes === 0 && this.expected < 0) {
      // The common case: whole messages in this frame, nothing held from before.
      while (data.length - at >= 5) {
        const length = this.prefix(data, at);
        if (data.length - at - 5 < length) break;
        messages.push({ bytes: data.subarray(at + 5, at + 5 + length), isCompressed: this.isCompressed });
        at += 5 + length;
        this.expected = -1;
      }
      if (at === data.length) return messages;
      this.expected = -1;
    }
    this.hold(at === 0 ? data : data.subarray(at));
    for (;;) {
      if (this.expected < 0) {
        if (this.partBytes < 5) return messages;
        const joined = this.joined();
        this.expected = this.prefix(joined, 0);
        this.parts = [joined.subarray(5)];
        this.partBytes -= 5;
      }
      if (this.partBytes < this.expected) return messages;
      const joined = this.joined();
      messages.push({ bytes: joined.subarray(0, this.expected), isCompressed: this.isCompressed });
      const rest = joined.subarray(this.expected);
      this.parts = rest.length === 0 ? [] : [rest];
      this.partBytes = rest.length;
      this.expected = -1;
    }
  }

  private prefix(data: Buffer, at: number): number {
    const flag = data[at] as number;
    if (flag > 1) throw new MessageFramingError('bad-flag', flag);
    const length = data.readUInt32BE(at + 1);
    if (length > this.bytesMax) throw new MessageFramingError('too-large', length);
    this.isCompressed = flag === 1;
    return length;
  }

  private hold(data: Buffer): void {
    // Copied: a partial message outlives the socket chunk it arrived in.
    this.parts.push(Buffer.from(data));
    this.partBytes += data.length;
  }

  private joined(): Buffer {
    if (this.parts.length !== 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] as Buffer;
  }
}
