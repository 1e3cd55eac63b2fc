/**
 * Writes a bbolt database file (the format of etcd's `member/snap/db`, read by `etcdctl snapshot
 * status|restore` and by etcd itself) from sorted buckets, in one pass and without bbolt. The file
 * is a finished database with nothing free: pages 0 and 1 are the two meta pages, page 2 an empty
 * freelist, then each bucket's B+tree, built bottom-up (leaves, then branches over their first
 * keys), and last the root tree of bucket names. All integers are little-endian, as bbolt writes
 * them on the platforms etcd runs on.
 *
 * Page layout: a 16-byte header (id u64, flags u16, count u16, overflow u32), `count` element
 * headers of 16 bytes, then the keys (and values) they point at; an element's `pos` is the
 * distance from that element's header to its key. A node bigger than one page spans `overflow`
 * more pages. A bucket is a leaf element with flag 1 whose value is (root pgid u64, sequence u64).
 */
import {
  BOLT_MAGIC, BOLT_VERSION, ELEMENT_BYTES, ELEMENT_FLAG_BUCKET, FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF, FLAG_META, META_CHECKSUMMED_BYTES, PAGE_HEADER_BYTES, fnv1a64,
} from './bbolt-format.js';

export const BOLT_PAGE_SIZE = 4096;

const META_BYTES = 64;
/** Element counts are u16. */
const ELEMENTS_PER_PAGE_MAX = 0xffff;
/** bbolt wants at least two keys per page where it can; a node closes only past this many bytes. */
const NODE_FILL_BYTES = BOLT_PAGE_SIZE - PAGE_HEADER_BYTES;

export interface BoltBucket {
  readonly name: Buffer;
  /** Key/value pairs in ascending byte order of key, keys unique (read a page at a time if async). */
  readonly entries: Iterable<readonly [Buffer, Buffer]> | AsyncIterable<readonly [Buffer, Buffer]>;
}

interface LeafEntry { readonly key: Buffer; readonly value: Buffer; readonly flags: number }
interface ChildRef { readonly firstKey: Buffer; readonly pgid: bigint }

/** Collects finished pages in page-id order. */
class PageSink {
  readonly chunks: Buffer[] = [];
  nextPgid = 3n;

  constructor() {
    // Pages 0-2 (metas, freelist) are written last, once the root and high-water mark are known.
    this.chunks.push(Buffer.alloc(0));
  }

  /** Lays out one node on as many pages as it needs and returns its first page id. */
  add(flags: number, elements: readonly { key: Buffer; value?: Buffer; flags?: number; pgid?: bigint }[]): bigint {
    let size = PAGE_HEADER_BYTES + elements.length * ELEMENT_BYTES;
    for (const e of elements) size += e.key.length + (e.value?.length ?? 0);
    const pages = Math.max(1, Math.ceil(size / BOLT_PAGE_SIZE));
    const page = Buffer.alloc(pages * BOLT_PAGE_SIZE);
    const pgid = this.nextPgid;
    page.writeBigUInt64LE(pgid, 0);
    page.writeUInt16LE(flags, 8);
    page.writeUInt16LE(elements.length, 10);
    page.writeUInt32LE(pages - 1, 12);
    let data = PAGE_HEADER_BYTES + elements.length * ELEMENT_BYTES;
    elements.forEach((e, i) => {
      const at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
      if (flags === FLAG_LEAF) {
        page.writeUInt32LE(e.flags ?? 0, at);
        page.writeUInt32LE(data - at, at + 4);
        page.writeUInt32LE(e.key.length, at + 8);
        page.writeUInt32LE(e.value?.length ?? 0, at + 12);
      } else {
        page.writeUInt32LE(data - at, at);
        page.writeUInt32LE(e.key.length, at + 4);
        page.writeBigUInt64LE(e.pgid ?? 0n, at + 8);
      }
      e.key.copy(page, data);
      data += e.key.length;
      if (e.value !== undefined) {
        e.value.copy(page, data);
        data += e.value.length;
      }
    });
    this.chunks.push(page);
    this.nextPgid += BigInt(pages);
    return pgid;
  }
}

/** Groups elements into nodes of about one page, never more than a u16 count. */
async function* nodes<T extends { key: Buffer }>(elements: Iterable<T> | AsyncIterable<T>, sizeOf: (e: T) => number): AsyncGenerator<T[]> {
  let node: T[] = [];
  let bytes = 0;
  for await (const element of elements) {
    const size = ELEMENT_BYTES + sizeOf(element);
    if (node.length >= 2 && (bytes + size > NODE_FILL_BYTES || node.length >= ELEMENTS_PER_PAGE_MAX)) {
      yield node;
      node = [];
      bytes = 0;
    }
    node.push(element);
    bytes += size;
  }
  yield node;
}

/** Writes one tree (leaves, then branch levels) and returns its root page id. */
async function writeTree(sink: PageSink, entries: Iterable<LeafEntry> | AsyncIterable<LeafEntry>): Promise<bigint> {
  let level: ChildRef[] = [];
  let previous: Buffer | undefined;
  const checked = (async function* (): AsyncGenerator<LeafEntry> {
    for await (const entry of entries) {
      if (previous !== undefined && Buffer.compare(previous, entry.key) >= 0) {
        throw new Error('bbolt writer: keys must be unique and in ascending order');
      }
      previous = entry.key;
      yield entry;
    }
  })();
  for await (const node of nodes(checked, (e) => e.key.length + e.value.length)) {
    level.push({ firstKey: node[0]?.key ?? Buffer.alloc(0), pgid: sink.add(FLAG_LEAF, node) });
  }
  // Bounded: each level has at most half the nodes of the one below (two or more children each).
  while (level.length > 1) {
    const next: ChildRef[] = [];
    for await (const node of nodes(level.map((c) => ({ key: c.firstKey, pgid: c.pgid })), (e) => e.key.length)) {
      next.push({ firstKey: node[0]?.key ?? Buffer.alloc(0), pgid: sink.add(FLAG_BRANCH, node) });
    }
    level = next;
  }
  const root = level[0];
  if (root === undefined) throw new Error('bbolt writer: empty tree');
  return root.pgid;
}

function metaPage(pgid: bigint, rootPgid: bigint, highWater: bigint, txid: bigint): Buffer {
  const page = Buffer.alloc(BOLT_PAGE_SIZE);
  page.writeBigUInt64LE(pgid, 0);
  page.writeUInt16LE(FLAG_META, 8);
  const meta = Buffer.alloc(META_BYTES);
  meta.writeUInt32LE(BOLT_MAGIC, 0);
  meta.writeUInt32LE(BOLT_VERSION, 4);
  meta.writeUInt32LE(BOLT_PAGE_SIZE, 8);
  meta.writeUInt32LE(0, 12);
  meta.writeBigUInt64LE(rootPgid, 16);
  meta.writeBigUInt64LE(0n, 24);
  meta.writeBigUInt64LE(2n, 32); // the freelist page
  meta.writeBigUInt64LE(highWater, 40);
  meta.writeBigUInt64LE(txid, 48);
  meta.writeBigUInt64LE(fnv1a64(meta.subarray(0, META_CHECKSUMMED_BYTES)), META_CHECKSUMMED_BYTES);
  meta.copy(page, PAGE_HEADER_BYTES);
  return page;
}

/**
 * The database file for these buckets (names in ascending order, each with sorted entries).
 * Returns the file as chunks in order, to be concatenated or streamed.
 */
export async function writeBoltDatabase(buckets: readonly BoltBucket[]): Promise<Buffer[]> {
  const sink = new PageSink();
  const roots: LeafEntry[] = [];
  for (const bucket of buckets) {
    const root = await writeTree(sink, (async function* (): AsyncGenerator<LeafEntry> {
      for await (const [key, value] of bucket.entries) yield { key, value, flags: 0 };
    })());
    const header = Buffer.alloc(16);
    header.writeBigUInt64LE(root, 0);
    roots.push({ key: bucket.name, value: header, flags: ELEMENT_FLAG_BUCKET });
  }
  const rootPgid = await writeTree(sink, roots);
  const highWater = sink.nextPgid;
  const freelist = Buffer.alloc(BOLT_PAGE_SIZE);
  freelist.writeBigUInt64LE(2n, 0);
  freelist.writeUInt16LE(FLAG_FREELIST, 8);
  // Both metas describe the same state; bbolt takes the one with the higher txid.
  sink.chunks[0] = Buffer.concat([metaPage(0n, rootPgid, highWater, 0n), metaPage(1n, rootPgid, highWater, 1n), freelist]);
  return sink.chunks;
}
