/**
 * etcd's JSON gateway calls the gRPC server over one client connection per listener, so
 * --max-concurrent-streams also bounds the gateway's requests in flight: with every slot held
 * (open watches, say), a new request waits until one ends, and a client with a timeout gives up.
 * Ours calls the handlers in-process; these slots reproduce that limit, in arrival order.
 */
export class StreamSlots {
  private inUse = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  /** Calls `start` once a slot is free; the returned function gives it back (once) or withdraws the wait. */
  acquire(start: () => void): () => void {
    let state: 'waiting' | 'holding' | 'done' = 'waiting';
    const grant = (): void => {
      if (state !== 'waiting') return;
      state = 'holding';
      this.inUse++;
      start();
    };
    if (this.inUse < this.max && this.waiting.length === 0) grant();
    else this.waiting.push(grant);
    return () => {
      if (state === 'holding') {
        this.inUse--;
        this.next();
      } else if (state === 'waiting') {
        const at = this.waiting.indexOf(grant);
        if (at >= 0) this.waiting.splice(at, 1);
      }
      state = 'done';
    };
  }

  private next(): void {
    while (this.inUse < this.max && this.waiting.length > 0) (this.waiting.shift() as () => void)();
  }
}
