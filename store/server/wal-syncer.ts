import { closeSync, fdatasync, openSync } from 'node:fs';
import { serverMetrics } from '../metrics/server-metrics.js';

/**
 * Makes SQLite's WAL durable without blocking the event loop: fsync runs on libuv's thread pool
 * while the main thread keeps decoding requests. Calls that arrive while a sync runs share the
 * next one, so N batches cost at most two fsyncs in flight. fsync through another descriptor of
 * the same file flushes the same pages; SQLite never replaces the WAL file while it is open.
 */
export class WalSyncer {
  private fd: number | null = null;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly walPath: string) {}

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
    this.fd ??= openSync(this.walPath, 'r+');
    const fd = this.fd;
    const startedMs = performance.now();
    return new Promise((resolve, reject) => fdatasync(fd, (err) => {
      serverMetrics.walFsyncSeconds.observe((performance.now() - startedMs) / 1000);
      if (err) reject(err);
      else resolve();
    }));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
