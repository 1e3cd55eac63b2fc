import type { Etcd3, IKeyValue } from 'etcd3';
import { revisionOf } from './txn.js';

export interface RangePagesOptions {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  /** Keys per request: bounds the size of every answer (and the memory each read holds). */
  readonly pageKeys: number;
  /** Read at this revision; by default at the revision of the first page, so pages agree. */
  readonly revision?: number;
  readonly keysOnly?: boolean;
  /** Stop after this many pages even if more remain (loops stay bounded). */
  readonly pagesMax: number;
}

export interface RangePage {
  readonly kvs: readonly IKeyValue[];
  /** The revision every page is read at. */
  readonly revision: number;
}

/**
 * Reads a key range in ascending key order, page by page, all pages at one revision: one
 * consistent view of a large range (10,000 jobs, a long history) without one huge answer.
 */
export async function* rangePages(client: Etcd3, options: RangePagesOptions): AsyncGenerator<RangePage> {
  let from = options.key;
  let revision = options.revision;
  for (let page = 0; page < options.pagesMax; page++) {
    const response = await client.kv.range({
      key: from, range_end: options.rangeEnd, limit: options.pageKeys,
      ...(revision === undefined ? {} : { revision }),
      ...(options.keysOnly === true ? { keys_only: true } : {}),
    });
    revision ??= revisionOf(response.header.revision);
    yield { kvs: response.kvs, revision };
    const last = response.kvs[response.kvs.length - 1];
    if (!response.more || last === undefined) return;
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
}
