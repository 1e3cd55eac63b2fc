import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import { serverMetrics } from '../metrics/server-metrics.js';

/**
 * A quick fsync (this moving average or less) of a small batch is made on the main thread: handing
 * it to libuv's thread pool and back costs two cross-core wakeups, on a VM as long as the fsync
 * itself, and with a small batch the loop has little else to do meanwhile. A slower disk keeps
 * every fsync off the loop, so a stall never holds reads and heartbeats for long.
 */
const INLINE_SYNC_MAX_MS = 1;
/** The moving average's weight of each new fsync duration. */
const DURATION_WEIGHT = 1 / 8;

/**
 * Makes SQLite's WAL durable. Under load the fsync runs on libuv's thread pool while the main
 * thread keeps decoding requests; calls that arrive while a sync runs share the next one, so N
 * batches cost at most two fsyncs in flight. fsync through another descriptor of the same file
 * flushes the same pages; SQLite never replaces the WAL file while it is open.
 */
export class WalSyncer {
  private fd: number | null = null;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** Moving average of recent fsync durations (starts at 0: the first one is tried inline). */
  private averageMs = 0;

  constructor(
    private readonly walPath: string,
    private readonly inlineMaxMs = INLINE_SYNC_MAX_MS,
  ) {}

  /**
   * Syncs a small batch on the calling thread when the disk has been quick and no sync is in
   * flight (one in flight may have started before the caller's write); null when it did not, and
   * the caller should use sync(). A failed fsync is a rejected promise, as from sync().
   */
  syncInlineIfQuick(): Promise<void> | null {
    if (this.running !== null || this.averageMs > this.inlineMaxMs) return null;
    const startedMs = performance.now();
    try {
      fdatasyncSync(this.descriptor());
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.observe(performance.now() - startedMs);
    }
    return Promise.resolve();
  }

  sync(): Promise<void> {
    if (this.running === null) {
      this.running = this.syncOnce().finally(() => { this.running = null; });
      return this.running;
    }
    // A sync is in flight, and it may have started before our write: wait for the next one.
    this.queued ??= this.running.then(() => {
      this.queued = null;
      return this.sync();
    });
    return this.queued;
  }

  private syncOnce(): Promise<void> {
    let fd: number;
    try {
      fd = this.descriptor();
    } catch (err) {
      return Promise.reject(err);
    }
    const startedMs = performance.now();
    return new Promise((resolve, reject) => fdatasync(fd, (err) => {
      this.observe(performance.now() - startedMs);
      if (err) reject(err);
      else resolve();
    }));
  }

  private descriptor(): number {
    this.fd ??= openSync(this.walPath, 'r+');
    return this.fd;
  }

  private observe(durationMs: number): void {
    this.averageMs += (durationMs - this.averageMs) * DURATION_WEIGHT;
    serverMetrics.walFsyncSeconds.observe(durationMs / 1000);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
