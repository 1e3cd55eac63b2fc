import { status } from '@grpc/grpc-js';
import type { ServerCall } from './server-call.js';

/** How often calls past their deadline are looked for. */
const SWEEP_INTERVAL_MS = 50;

/**
 * Ends calls whose grpc-timeout has passed with DEADLINE_EXCEEDED and cancels their handlers.
 * One timer for all calls rather than one per call (most calls carry a deadline and answer long
 * before it); it runs only while some call is watched, and a deadline fires within 50 ms.
 */
export class DeadlineSweeper {
  private readonly calls = new Map<ServerCall, number>();
  private timer: NodeJS.Timeout | null = null;

  watch(call: ServerCall, deadline: number): void {
    this.calls.set(call, deadline);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.calls.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [call, deadline] of this.calls) {
      if (call.isDone) {
        this.calls.delete(call);
      } else if (deadline <= now) {
        this.calls.delete(call);
        call.finish({ code: status.DEADLINE_EXCEEDED, details: 'context deadline exceeded' });
        call.cancel();
      }
    }
    if (this.calls.size === 0) this.stop();
  }
}
