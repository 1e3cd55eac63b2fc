import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import { decodeRunRecord, isLiveState, type RunRecord, type Versioned } from '../shared/history/index.js';
import type { RequestContext } from './http-server.js';

/** A follow stream ends at the latest after this long, even if the run never finishes. */
export const FOLLOW_DURATION_MS_MAX = 24 * 3_600_000;
/** Bytes of the previous tail used to find where the new tail continues it. */
const OVERLAP_PROBE_BYTES = 256;

/**
 * What to print when a run's output tail changes from `previous` to `next`. The tail is a sliding
 * window (the last outputTailBytesMax bytes), so the new text is found by locating the end of the
 * previous tail inside the next one; when they no longer overlap, output was dropped in between.
 */
export function outputDelta(previous: string, next: string): string {
  if (next.startsWith(previous)) return next.slice(previous.length);
  const probe = previous.slice(-OVERLAP_PROBE_BYTES);
  if (probe.length > 0) {
    const at = next.lastIndexOf(probe);
    if (at >= 0) return next.slice(at + probe.length);
  }
  return `\n[... output skipped ...]\n${next}`;
}

/**
 * Streams a live run's output: what is stored now, then every change of its run record, by a
 * watch that starts just after the revision read, so no update is missed. Ends when the run
 * reaches a final state, when the caller disconnects, or after FOLLOW_DURATION_MS_MAX.
 */
export async function followRunOutput(
  client: Etcd3,
  run: Versioned<RunRecord>,
  context: RequestContext,
  clock: Clock,
): Promise<void> {
  const response = context.response;
  let printed = run.value.outputTail ?? '';
  response.write(printed);
  const watcher = await client
    .watch()
    .key(run.key)
    .startRevision(String(run.modRevision + 1))
    .create();
  await new Promise<void>((resolve) => {
    let done = false;
    const finish = (trailer?: string): void => {
      if (done) return;
      done = true;
      limit.cancel();
      void watcher.cancel().catch(() => undefined);
      if (!response.writableEnded && !response.destroyed) response.end(trailer ?? '');
      resolve();
    };
    const limit = clock.setTimer(FOLLOW_DURATION_MS_MAX, () => finish('\n[follow time limit reached]\n'));
    response.once('close', () => finish());
    watcher.on('put', (next) => {
      const updated = decodeRunRecord(next.value.toString());
      if (updated === undefined) return;
      const tail = updated.outputTail ?? '';
      const delta = outputDelta(printed, tail);
      printed = tail;
      if (delta.length > 0) response.write(delta);
      if (!isLiveState(updated.state)) finish();
    });
    watcher.on('delete', () => finish('\n[run record deleted]\n'));
    watcher.on('error', (err) => {
      context.log.warn({ err }, 'log follow watch failed');
      finish('\n[follow interrupted: store watch failed]\n');
    });
  });
}
