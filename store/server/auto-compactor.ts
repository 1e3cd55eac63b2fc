import type { Logger } from 'pino';
import { StoreError } from '../mvcc/errors.js';
import type { EtcdServer } from './etcd-server.js';

export type AutoCompactionConfig =
  | { readonly mode: 'periodic'; readonly retentionMs: number }
  | { readonly mode: 'revision'; readonly retention: number };

/** etcd's revision mode looks every five minutes. */
const REVISION_MODE_INTERVAL_MS = 5 * 60 * 1000;

/**
 * --auto-compaction-mode: periodic keeps `retention` of history (sampling the revision every tenth
 * of the retention and compacting to the oldest sample still inside it); revision keeps the last
 * `retention` revisions. Compactions go through the log like any client's. Every member samples,
 * but only the leader proposes (as etcd pauses its compactor on followers): three members each
 * proposing the same compaction would apply it once and fail twice.
 */
export class AutoCompactor {
  private readonly timer: NodeJS.Timeout;
  private readonly samples: { atMs: number; rev: number }[] = [];

  constructor(private readonly config: AutoCompactionConfig, private readonly server: EtcdServer, private readonly log: Logger) {
    const interval = config.mode === 'periodic' ? Math.max(1000, Math.floor(config.retentionMs / 10)) : REVISION_MODE_INTERVAL_MS;
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
  }

  private tick(): void {
    const now = Date.now();
    const current = this.server.kv.currentRev;
    let target: number;
    if (this.config.mode === 'periodic') {
      this.samples.push({ atMs: now, rev: current });
      const cutoff = now - this.config.retentionMs;
      const old = this.samples.filter((s) => s.atMs <= cutoff);
      if (old.length === 0) return;
      target = (old[old.length - 1] as { rev: number }).rev;
      while (this.samples.length > 0 && (this.samples[0] as { atMs: number }).atMs <= cutoff) this.samples.shift();
    } else {
      target = current - this.config.retention;
    }
    if (target <= 0 || target <= this.server.kv.compactRev) return;
    if (this.server.leaderId !== this.server.memberId) return;
    this.server.propose({ type: 'compact', revision: target }).then(
      () => this.log.info({ rev: target }, 'auto compaction done'),
      (err: unknown) => {
        if (!(err instanceof StoreError && err.kind === 'compacted')) this.log.warn({ err, rev: target }, 'auto compaction failed');
      },
    );
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
