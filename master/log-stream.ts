import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import { decodeRunRecord, isLiveState, type RunRecord, type Versioned } from '../shared/history/index.js';
import type { RequestContext } from './http-server.js';
import { openWatchStream } from '../shared/etcd/watch-stream.js';

/** A follow stream ends at the latest after this long, even if the run never finishes. */
export const FOLLOW_DURATION_MS_MAX = 24 * 3_600_000;
/** Follow streams one master serves at once; each holds a store watch and a socket. */
export const FOLLOW_STREAMS_MAX = 256;
let followStreams = 0;

/** Reserves a follow stream, or returns false when FOLLOW_STREAMS_MAX are open. */
export function reserveFollowStream(): boolean {
  if (followStreams >= FOLLOW_STREAMS_MAX) return false;
  followStreams++;
  return true;
}
/** Bytes of the previous tail used to find where the new tail continues it. */
const OVERLAP_PROBE_BYTES = 256;

/** Places in the previous tail tried as the start of the overlap; bounds work on repetitive output. */
const OVERLAP_TRIES_MAX = 64;

/**
 * What to print when a run's output tail changes from `previous` to `next`. The tail is a sliding
 * window (the last outputTailBytesMax bytes), so `next` is a suffix of `previous` followed by new
 * output. The suffix is found by looking for the start of `next` inside `previous`, and the
 * largest overlap wins. When they no longer overlap, output was dropped in between: say so.
 */
export function outputDelta(previous: string, next: string): string {
  if (next.startsWith(previous)) return next.slice(previous.length);
  const probe = next.slice(0, OVERLAP_PROBE_BYTES);
  // Overlaps at least as long as the probe contain it whole: find them with indexOf ...
  let from = 0;
  for (let tries = 0; tries < OVERLAP_TRIES_MAX && probe.length > 0; tries++) {
    const at = previous.indexOf(probe, from);
    if (at < 0) break;
    const overlap = previous.slice(at);
    if (next.startsWith(overlap)) return next.slice(overlap.length);
    from = at + 1;
  }
  // ... shorter ones start within the last probe-length characters of `previous`.
  for (let at = Math.max(1, previous.length - probe.length); at < previous.length; at++) {
    const overlap = previous.slice(at);
    if (next.startsWith(overlap)) return next.slice(overlap.length);
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
  // The caller reserved this stream (reserveFollowStream); it is released however the stream ends.
  try {
    await streamChanges(client, run, context, clock);
  } finally {
    followStreams--;
  }
}

async function streamChanges(
  client: Etcd3,
  run: Versioned<RunRecord>,
  context: RequestContext,
  clock: Clock,
): Promise<void> {
  const response = context.response;
  let printed = run.value.outputTail ?? '';
  response.write(printed);
  await new Promise<void>((resolve) => {
    let done = false;
    const finish = (trailer?: string): void => {
      if (done) return;
      done = true;
      limit.cancel();
      watch.close();
      if (!response.writableEnded && !response.destroyed) response.end(trailer ?? '');
      resolve();
    };
    const show = (value: Buffer): void => {
      const updated = decodeRunRecord(value.toString());
      if (updated === undefined || done) return;
      const tail = updated.outputTail ?? '';
      const delta = outputDelta(printed, tail);
      printed = tail;
      if (delta.length > 0) response.write(delta);
      if (!isLiveState(updated.state)) finish();
    };
    // The watch covers the run key as a prefix (broadcast runs of the same slot share it), so
    // events are matched on the exact key. It starts just after the revision read above.
    const watch = openWatchStream(client, run.key, run.modRevision + 1, {}, {
      events: (events) => {
        for (const event of events) {
          if (event.kv.key.toString() !== run.key) continue;
          if (event.type === 'Delete') finish('\n[run record deleted]\n');
          else show(event.kv.value);
        }
      },
      // Updates were compacted away while the stream was down: show the latest and go on from it.
      onCompacted: () => {
        client.kv.range({ key: Buffer.from(run.key) }).then((res) => {
          const kv = res.kvs[0];
          if (kv === undefined) return finish('\n[run record deleted]\n');
          show(kv.value);
          if (!done) watch.restart(Number(res.header.revision) + 1);
        }, (err: unknown) => {
          context.log.warn({ err }, 'log follow re-read failed');
          finish('\n[follow interrupted: store unavailable]\n');
        });
      },
    }, context.log);
    const limit = clock.setTimer(FOLLOW_DURATION_MS_MAX, () => finish('\n[follow time limit reached]\n'));
    response.once('close', () => finish());
  });
}
