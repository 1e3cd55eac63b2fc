import type { Etcd3, IEvent, IWatchRequest, IWatchResponse, IDuplexStream } from 'etcd3';
import { prefixEnd } from '../keys.js';
import { revisionOf } from './txn.js';
import type { Logger } from '../log.js';

/**
 * A long-lived watch on one prefix, on its own gRPC stream, that resumes by itself: after a
 * stream error or end it re-opens from (last applied event revision + 1), so nothing is missed,
 * and callers drop events at or below what they already applied, so nothing is applied twice.
 * If that revision has been compacted the store cancels the watch with compact_revision set, and
 * `onCompacted` must re-read the state (a range) and call `restart(rangeRevision + 1)`.
 *
 * We do not use the etcd3 client's Watcher for this: it multiplexes every watcher on one stream,
 * and after a compaction cancel on re-attach, the watchers queued behind it were never attached
 * again (seen in test/scheduler/worker-watch.test.ts), leaving a silent, dead watch.
 */
export interface WatchStreamHandlers {
  events(events: readonly IEvent[]): void;
  onCompacted(compactRevision: number): void;
}

export interface WatchStream {
  /** Re-opens the watch from `fromRevision` (after a re-read). */
  restart(fromRevision: number): void;
  close(): void;
}

const REOPEN_PAUSE_MS = 500;

export function openWatchStream(
  client: Etcd3, prefix: string, fromRevision: number, options: { prevKv?: boolean }, handlers: WatchStreamHandlers, logger: Logger,
): WatchStream {
  let nextRevision = fromRevision;
  let stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  let generation = 0;
  let closed = false;
  let reopenTimer: NodeJS.Timeout | undefined;

  const reopenLater = (): void => {
    if (closed || reopenTimer !== undefined) return;
    reopenTimer = setTimeout(() => {
      reopenTimer = undefined;
      open();
    }, REOPEN_PAUSE_MS);
  };

  const open = (): void => {
    if (closed) return;
    const mine = ++generation;
    stream?.cancel();
    stream = undefined;
    client.watchClient.watch().then((s) => {
      if (closed || mine !== generation) {
        s.cancel();
        return;
      }
      stream = s;
      const drop = (): void => {
        if (mine !== generation) return;
        stream = undefined;
        reopenLater();
      };
      s.on('error', (err) => {
        logger.debug({ err, prefix }, 'watch stream failed; reopening');
        drop();
      });
      s.on('end', drop);
      s.on('data', (response) => {
        if (mine !== generation) return;
        if (response.canceled) {
          const compactRevision = Number(response.compact_revision);
          generation++;
          s.cancel();
          stream = undefined;
          if (compactRevision > 0) handlers.onCompacted(compactRevision);
          else reopenLater();
          return;
        }
        if (response.events.length === 0) return;
        const last = response.events[response.events.length - 1];
        if (last !== undefined) nextRevision = Math.max(nextRevision, revisionOf(last.kv.mod_revision) + 1);
        handlers.events(response.events);
      });
      s.write({
        create_request: {
          key: Buffer.from(prefix), range_end: prefixEnd(prefix), start_revision: nextRevision,
          ...(options.prevKv === true ? { prev_kv: true } : {}),
        },
      });
    }).catch((err: unknown) => {
      logger.debug({ err, prefix }, 'watch stream could not open; retrying');
      reopenLater();
    });
  };

  open();
  return {
    restart: (revision) => {
      nextRevision = revision;
      clearTimeout(reopenTimer);
      reopenTimer = undefined;
      open();
    },
    close: () => {
      closed = true;
      generation++;
      clearTimeout(reopenTimer);
      stream?.cancel();
      stream = undefined;
    },
  };
}
