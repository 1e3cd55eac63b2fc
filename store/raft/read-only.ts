import { assert } from '../../shared/assert.js';
import type { MemberId, Message } from './types.js';


export interface ReadIndexStatus {
  readonly request: Message;
  /** The commit index when the request arrived: the read may be served once applied >= index. */
  readonly index: number;
  readonly acks: Set<MemberId>;
}

function contextKey(context: Uint8Array): string {
  let key = '';
  for (const byte of context) key += byte.toString(16).padStart(2, '0');
  return key;
}

/**
 * ReadIndex requests waiting for a heartbeat round to confirm the leader is still the leader
 * (Raft §6.4). Requests are queued in arrival order; a quorum of acks for one request confirms it
 * and every request queued before it, so one heartbeat round answers a whole batch.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  addRequest(index: number, request: Message): void {
    const key = contextKey(request.context);
    if (this.pending.has(key)) return; // a duplicate context: the first request answers both
    this.pending.set(key, { request, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records an ack; returns the acks so far, or null if the context is unknown (stale). */
  recvAck(from: MemberId, context: Uint8Array): ReadonlySet<MemberId> | null {
    const status = this.pending.get(contextKey(context));
    if (status === undefined) return null;
    status.acks.add(from);
    return status.acks;
  }

  /** Removes and returns every request up to and including the one with `context`. */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const position = this.queue.indexOf(key);
    if (position < 0) return [];
    const confirmed = this.queue.slice(0, position + 1);
    this.queue = this.queue.slice(position + 1);
    return confirmed.map((k) => {
      const status = this.pending.get(k);
      assert(status !== undefined, 'queued read-index request without status');
      this.pending.delete(k);
      return status;
    });
  }

  lastPendingContext(): Uint8Array | null {
    const key = this.queue[this.queue.length - 1];
    if (key === undefined) return null;
    return this.pending.get(key)?.request.context ?? null;
  }
}
