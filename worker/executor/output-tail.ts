/** Keeps the last `bytesMax` bytes of a stream without holding the rest (bounded memory). */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly bytesMax: number) {}

  push(chunk: Buffer): void {
    if (this.bytesMax === 0) {
      this.dropped += chunk.length;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.bytesMax && this.chunks.length > 0) {
      const head = this.chunks[0];
      if (head === undefined) break;
      const excess = this.size - this.bytesMax;
      if (head.length <= excess) {
        this.chunks.shift();
        this.size -= head.length;
        this.dropped += head.length;
      } else {
        this.chunks[0] = head.subarray(excess);
        this.size -= excess;
        this.dropped += excess;
      }
    }
  }

  get droppedBytes(): number {
    return this.dropped;
  }

  text(): string {
    return this.bytes().toString('utf8');
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Forgets what is held (dropped bytes stay counted). */
  clear(): void {
    this.chunks = [];
    this.size = 0;
  }
}
