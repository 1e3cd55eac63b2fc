import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { prefixEnd } from '../keys.js';
import { revisionOf } from './txn.js';
import type { Logger } from '../log.js';

/**
 * A local copy of every key under a prefix: an initial range, then a watch from the next revision.
 * The etcd3 watcher resumes from its last seen revision after a reconnect; events at or below a
 * key's known modRevision are ignored, so nothing is applied twice. If the watch is cancelled
 * (compaction), the cache re-reads the prefix and watches again from the new revision.
 */
export interface PrefixCacheListener {
  put(key: string, kv: IKeyValue): void;
  delete(key: string, revision: number): void;
}

export interface PrefixCache {
  /** Revision the cache reflects at least. */
  revision(): number;
  close(): Promise<void>;
}

const RESYNC_PAUSE_MS = 500;
const RESYNC_ATTEMPTS_MAX = 1_000;

export async function openPrefixCache(client: Etcd3, prefix: string, listener: PrefixCacheListener, logger: Logger): Promise<PrefixCache> {
  const known = new Map<string, number>();
  let revision = 0;
  let watcher: Watcher | undefined;
  let closed = false;

  const load = async (): Promise<void> => {
    const response = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
    const rangeRevision = revisionOf(response.header.revision);
    const seen = new Set<string>();
    for (const kv of response.kvs) {
      const key = kv.key.toString();
      seen.add(key);
      if (known.get(key) !== revisionOf(kv.mod_revision)) {
        known.set(key, revisionOf(kv.mod_revision));
        listener.put(key, kv);
      }
    }
    for (const key of [...known.keys()]) {
      if (!seen.has(key)) {
        known.delete(key);
        listener.delete(key, rangeRevision);
      }
    }
    revision = rangeRevision;
    const next = await client.watch().prefix(prefix).startRevision(String(rangeRevision + 1)).create();
    if (closed) {
      await next.cancel();
      return;
    }
    watcher = next;
    next.on('data', (res) => {
      for (const event of res.events) {
        const key = event.kv.key.toString();
        const eventRevision = revisionOf(event.kv.mod_revision);
        const knownRevision = known.get(key);
        if (knownRevision !== undefined && eventRevision <= knownRevision) continue;
        if (event.type === 'Put') {
          known.set(key, eventRevision);
          listener.put(key, event.kv);
        } else if (knownRevision !== undefined) {
          known.delete(key);
          listener.delete(key, eventRevision);
        }
      }
      revision = Math.max(revision, revisionOf(res.header.revision));
    });
    next.on('error', (err) => {
      logger.warn({ err, prefix }, 'watch cancelled; re-reading prefix');
      if (watcher === next) watcher = undefined;
      void next.cancel().catch(() => undefined);
      void resync();
    });
  };

  const resync = async (): Promise<void> => {
    for (let i = 0; i < RESYNC_ATTEMPTS_MAX && !closed; i++) {
      try {
        await load();
        return;
      } catch (err) {
        logger.warn({ err, prefix }, 're-read failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RESYNC_PAUSE_MS));
      }
    }
  };

  await load();
  return {
    revision: () => revision,
    close: async () => {
      closed = true;
      await watcher?.cancel().catch(() => undefined);
    },
  };
}
