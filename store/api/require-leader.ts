import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { StoreError } from '../mvcc/errors.js';
import type { EtcdServer } from '../server/etcd-server.js';
import { STORE_ERROR_WIRE } from './grpc-status.js';

/**
 * clientv3's WithRequireLeader: a call carrying `hasleader: true` must not be served by a member
 * that has lost its leader, since a partitioned member would answer with stale data or, for a
 * watch, with silence. Unary calls and new streams are refused at once; streams already open are
 * ended once the member has been without a leader for three election timeouts (as etcd 3.4: ending
 * a stream costs the client far more than refusing a request, so it waits longer).
 */
const NO_LEADER_CHECKS_BEFORE_CANCEL = 3;

export function requiresLeader(metadata: Metadata): boolean {
  return metadata.get('hasleader')[0] === 'true';
}

export function noLeaderError(): Partial<ServiceError> {
  const [code, details] = STORE_ERROR_WIRE[new StoreError('no-leader').kind];
  return { code, details, metadata: new Metadata() };
}

/** A stream that can be ended with a status; see failStream. */
export interface EndableStream {
  readonly metadata: Metadata;
  emit(event: 'error', err: Partial<ServiceError>): boolean;
  once(event: 'close' | 'finish', listener: () => void): unknown;
}

/** The open streams that asked for a leader, and the timer that watches the member's leader. */
export class LeaderRequiredStreams {
  private readonly streams = new Set<EndableStream>();
  private timer: NodeJS.Timeout | null = null;
  private checksWithoutLeader = 0;

  constructor(private readonly server: Pick<EtcdServer, 'raftStatus'>, private readonly electionMs: number) {}

  /**
   * Returns false (and ends the stream with "no leader") when the stream asks for a leader this
   * member does not have; otherwise tracks it, if it asked, until it closes.
   */
  admit(stream: EndableStream): boolean {
    if (!requiresLeader(stream.metadata)) return true;
    if (this.server.raftStatus().leader === 0n) {
      stream.emit('error', noLeaderError());
      return false;
    }
    this.streams.add(stream);
    const forget = (): void => {
      this.streams.delete(stream);
      if (this.streams.size === 0) this.stopTimer();
    };
    stream.once('close', forget);
    stream.once('finish', forget);
    this.startTimer();
    return true;
  }

  get size(): number {
    return this.streams.size;
  }

  private startTimer(): void {
    if (this.timer !== null) return;
    this.checksWithoutLeader = 0;
    this.timer = setInterval(() => this.check(), this.electionMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private check(): void {
    this.checksWithoutLeader = this.server.raftStatus().leader === 0n ? this.checksWithoutLeader + 1 : 0;
    if (this.checksWithoutLeader < NO_LEADER_CHECKS_BEFORE_CANCEL) return;
    const ended = [...this.streams];
    this.streams.clear();
    this.stopTimer();
    for (const stream of ended) stream.emit('error', noLeaderError());
  }
}
