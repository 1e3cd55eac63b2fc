/** Bytes of a block the queue copies into. */
const BLOCK_BYTES = 64 * 1024;

/**
 * A stream's data waiting for flow-control window, as bytes copied into blocks rather than one
 * object per message: a client that reads slowly leaves thousands of small responses queued,
 * and as objects they would survive young-generation collections and be copied by each. Messages
 * may be cut anywhere when taken (DATA frames need not follow message boundaries).
 */
export class ByteQueue {
  private blocks: Buffer[] = [];
  /** Read position in blocks[0], and write position in the last block. */
  private head = 0;
  private tail = 0;
  /** Bytes queued and not taken. */
  length = 0;
  /** Bytes ever pushed and ever taken: write callbacks wait for `taken` to pass their end. */
  pushedTotal = 0;
  takenTotal = 0;

  /** Appends the parts of one payload (`bytes` long in all), prefixed as one message or not. */
  pushParts(parts: readonly Buffer[], bytes: number, isMessage: boolean): void {
    const total = bytes + (isMessage ? 5 : 0);
    let block = this.blocks[this.blocks.length - 1];
    if (block === undefined || block.length - this.tail < total) {
      // The full block is cut to what it holds: a block before the last ends at its length.
      if (block !== undefined) this.blocks[this.blocks.length - 1] = block.subarray(0, this.tail);
      block = Buffer.allocUnsafe(Math.max(BLOCK_BYTES, total));
      this.blocks.push(block);
      if (this.blocks.length === 1) this.head = 0;
      this.tail = 0;
    }
    if (isMessage) {
      block[this.tail] = 0;
      block.writeUInt32BE(bytes, this.tail + 1);
      this.tail += 5;
    }
    for (const part of parts) {
      block.set(part, this.tail);
      this.tail += part.length;
    }
    this.length += total;
    this.pushedTotal += total;
  }

  /** Up to `limit` bytes from the front (a view when they lie in one block). */
  take(limit: number): Buffer {
    const size = Math.min(limit, this.length);
    const first = this.blocks[0] as Buffer;
    let out: Buffer;
    if (this.endOfFirst() - this.head >= size) {
      out = first.subarray(this.head, this.head + size);
      this.head += size;
    } else {
      out = Buffer.allocUnsafe(size);
      let at = 0;
      while (at < size) {
        const block = this.blocks[0] as Buffer;
        const part = Math.min(size - at, this.endOfFirst() - this.head);
        out.set(block.subarray(this.head, this.head + part), at);
        at += part;
        this.head += part;
        this.dropReadBlock();
      }
    }
    this.dropReadBlock();
    this.length -= size;
    this.takenTotal += size;
    if (this.length === 0) this.clear();
    return out;
  }

  /** Where the data of the first block ends (the last block is filled up to `tail`). */
  private endOfFirst(): number {
    return this.blocks.length === 1 ? this.tail : (this.blocks[0] as Buffer).length;
  }

  /** A block read to its end, other than the last, is let go. */
  private dropReadBlock(): void {
    if (this.blocks.length > 1 && this.head === (this.blocks[0] as Buffer).length) {
      this.blocks.shift();
      this.head = 0;
    }
  }

  clear(): void {
    this.blocks = [];
    this.head = 0;
    this.tail = 0;
    this.length = 0;
  }
}
