import type { Etcd3, IKeyValue } from 'etcd3';
import { prefixEnd } from '../keys.js';
import { revisionOf } from './txn.js';
import type { Logger } from '../log.js';
import { openWatchStream, type WatchStream } from './watch-stream.js';
import { assert } from '../assert.js';

/**
 * A local copy of every key under a prefix: an initial range, then a watch from the next revision
 * (shared/etcd/watch-stream.ts resumes it after a reconnect). Events at or below a key's known
 * modRevision are ignored, so nothing is applied twice. If the watch's revision was compacted, the
 * cache re-reads the prefix (reporting keys that vanished as deletes) and watches again.
 */
export interface PrefixCacheListener {
  put(key: string, kv: IKeyValue): void;
  delete(key: string, revision: number, previous?: IKeyValue): void;
}

export interface PrefixCache {
  /** Revision the cache reflects at least. */
  revision(): number;
  close(): Promise<void>;
}

const RESYNC_PAUSE_MS = 500;
const RESYNC_ATTEMPTS_MAX = 1_000;
/** Keys per page of the initial read: well under 4 MiB with job definitions of a few hundred bytes. */
const LOAD_PAGE_KEYS = 1_000;
const LOAD_PAGES_MAX = 1_000;

export async function openPrefixCache(
  client: Etcd3, prefix: string, listener: PrefixCacheListener, logger: Logger, options: { prevKv?: boolean } = {},
): Promise<PrefixCache> {
  const known = new Map<string, number>();
  let revision = 0;
  let watch: WatchStream | undefined;
  let closed = false;

  /**
   * Reads the prefix page by page at one revision: 10,000 job definitions in one reply exceeded
   * gRPC's 4 MiB default receive limit (issue 5 bench).
   */
  const load = async (): Promise<number> => {
    const end = prefixEnd(prefix);
    let from = Buffer.from(prefix);
    let rangeRevision: number | undefined;
    const seen = new Set<string>();
    for (let page = 0; page < LOAD_PAGES_MAX; page++) {
      const response = await client.kv.range({
        key: from, range_end: end, limit: LOAD_PAGE_KEYS, ...(rangeRevision === undefined ? {} : { revision: String(rangeRevision) }),
      });
      rangeRevision ??= revisionOf(response.header.revision);
      for (const kv of response.kvs) {
        const key = kv.key.toString();
        seen.add(key);
        if (known.get(key) !== revisionOf(kv.mod_revision)) {
          known.set(key, revisionOf(kv.mod_revision));
          listener.put(key, kv);
        }
      }
      const last = response.kvs[response.kvs.length - 1];
      if (!response.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
      assert(page + 1 < LOAD_PAGES_MAX, `more than ${LOAD_PAGES_MAX * LOAD_PAGE_KEYS} keys under ${prefix}`);
    }
    assert(rangeRevision !== undefined, 'a range always answers with a header');
    for (const key of [...known.keys()]) {
      if (!seen.has(key)) {
        known.delete(key);
        listener.delete(key, rangeRevision);
      }
    }
    revision = Math.max(revision, rangeRevision);
    return rangeRevision;
  };

  const resync = async (): Promise<void> => {
    for (let i = 0; i < RESYNC_ATTEMPTS_MAX && !closed; i++) {
      try {
        const rangeRevision = await load();
        watch?.restart(rangeRevision + 1);
        return;
      } catch (err) {
        logger.warn({ err, prefix }, 're-read failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RESYNC_PAUSE_MS));
      }
    }
  };

  const startRevision = await load();
  watch = openWatchStream(client, prefix, startRevision + 1, options, {
    events: (events) => {
      for (const event of events) {
        const key = event.kv.key.toString();
        const eventRevision = revisionOf(event.kv.mod_revision);
        revision = Math.max(revision, eventRevision);
        const knownRevision = known.get(key);
        if (knownRevision !== undefined && eventRevision <= knownRevision) continue;
        if (event.type === 'Put') {
          known.set(key, eventRevision);
          listener.put(key, event.kv);
        } else if (knownRevision !== undefined) {
          known.delete(key);
          listener.delete(key, eventRevision, event.prev_kv ?? undefined);
        }
      }
    },
    onCompacted: (compactRevision) => {
      logger.warn({ prefix, compactRevision }, 'watch revision compacted; re-reading prefix');
      void resync();
    },
  }, logger);

  return {
    revision: () => revision,
    close: async () => {
      closed = true;
      watch?.close();
    },
  };
}
