/**
 * Reads a bbolt database file (an etcd snapshot or member/snap/db; see bbolt-writer.ts for the
 * layout) without bbolt: the newer valid meta page, then each top-level bucket's tree, inline
 * buckets included (bbolt keeps a small bucket inside its parent's value). Only what a restore
 * needs: top-level buckets and their key/value pairs in key order.
 */
import {
  BOLT_MAGIC, BOLT_VERSION, ELEMENT_BYTES, ELEMENT_FLAG_BUCKET, FLAG_BRANCH, FLAG_LEAF, PAGE_HEADER_BYTES, fnv1a64,
} from './bbolt-format.js';

const BUCKET_HEADER_BYTES = 16;
/** Deeper than any real tree (bbolt's fan-out is in the hundreds): a loop in the file stops here. */
const TREE_DEPTH_MAX = 64;

export class BoltFormatError extends Error {
  override readonly name = 'BoltFormatError';
}

interface Meta { readonly pageSize: number; readonly root: bigint; readonly txid: bigint; readonly highWater: bigint }


function readMeta(file: Buffer, offset: number): Meta | null {
  if (file.length < offset + PAGE_HEADER_BYTES + 64) return null;
  const meta = file.subarray(offset + PAGE_HEADER_BYTES, offset + PAGE_HEADER_BYTES + 64);
  if (meta.readUInt32LE(0) !== BOLT_MAGIC || meta.readUInt32LE(4) !== BOLT_VERSION) return null;
  if (meta.readBigUInt64LE(56) !== fnv1a64(meta.subarray(0, 56))) return null;
  return { pageSize: meta.readUInt32LE(8), root: meta.readBigUInt64LE(16), highWater: meta.readBigUInt64LE(40), txid: meta.readBigUInt64LE(48) };
}

/** The meta bbolt would open: the valid one with the higher txid. Page 1 sits one page in. */
function chooseMeta(file: Buffer): Meta {
  const first = readMeta(file, 0);
  const pageSize = first?.pageSize ?? 4096;
  const second = readMeta(file, pageSize);
  const candidates = [first, second].filter((m): m is Meta => m !== null && m.pageSize >= 512);
  const newest = candidates.sort((a, b) => (a.txid > b.txid ? -1 : 1))[0];
  if (newest === undefined) throw new BoltFormatError('not a bbolt database (no valid meta page)');
  return newest;
}

type Visit = (key: Buffer, value: Buffer, flags: number) => void;

class PageReader {
  constructor(private readonly file: Buffer, private readonly meta: Meta) {}

  /** The page at `pgid`, overflow pages included. */
  page(pgid: bigint): Buffer {
    if (pgid < 2n || pgid >= this.meta.highWater) throw new BoltFormatError(`page ${pgid} out of bounds`);
    const start = Number(pgid) * this.meta.pageSize;
    if (start + PAGE_HEADER_BYTES > this.file.length) throw new BoltFormatError(`page ${pgid} beyond the end of the file`);
    const overflow = this.file.readUInt32LE(start + 12);
    const end = start + (overflow + 1) * this.meta.pageSize;
    if (end > this.file.length) throw new BoltFormatError(`page ${pgid} runs past the end of the file`);
    return this.file.subarray(start, end);
  }

  /** Visits every leaf element of the tree below `page`, in key order. */
  walk(page: Buffer, visit: Visit, depth = 0): void {
    if (depth > TREE_DEPTH_MAX) throw new BoltFormatError('tree too deep (a loop in the file?)');
    const flags = page.readUInt16LE(8);
    const count = page.readUInt16LE(10);
    for (let i = 0; i < count; i++) {
      const at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
      if (flags === FLAG_LEAF) {
        const elementFlags = page.readUInt32LE(at);
        const keyAt = at + page.readUInt32LE(at + 4);
        const keySize = page.readUInt32LE(at + 8);
        const valueSize = page.readUInt32LE(at + 12);
        if (keyAt + keySize + valueSize > page.length) throw new BoltFormatError('leaf element out of its page');
        visit(page.subarray(keyAt, keyAt + keySize), page.subarray(keyAt + keySize, keyAt + keySize + valueSize), elementFlags);
      } else if (flags === FLAG_BRANCH) {
        this.walk(this.page(page.readBigUInt64LE(at + 8)), visit, depth + 1);
      } else {
        throw new BoltFormatError(`unexpected page flags ${flags} in a tree`);
      }
    }
  }

  /** Visits a bucket's pairs, given its value in the parent (header, maybe an inline page). */
  walkBucket(bucketValue: Buffer, visit: Visit): void {
    if (bucketValue.length < BUCKET_HEADER_BYTES) throw new BoltFormatError('bucket header too short');
    const root = bucketValue.readBigUInt64LE(0);
    if (root === 0n) this.walk(bucketValue.subarray(BUCKET_HEADER_BYTES), visit);
    else this.walk(this.page(root), visit);
  }
}

/** Every top-level bucket with its pairs (nested buckets are skipped; etcd has none). */
export function readBoltBuckets(file: Buffer): Map<string, [Buffer, Buffer][]> {
  const meta = chooseMeta(file);
  const reader = new PageReader(file, meta);
  const buckets = new Map<string, [Buffer, Buffer][]>();
  reader.walk(reader.page(meta.root), (name, value, flags) => {
    if ((flags & ELEMENT_FLAG_BUCKET) === 0) return;
    const pairs: [Buffer, Buffer][] = [];
    reader.walkBucket(value, (key, v, elementFlags) => {
      if ((elementFlags & ELEMENT_FLAG_BUCKET) === 0) pairs.push([key, v]);
    });
    buckets.set(name.toString('latin1'), pairs);
  });
  return buckets;
}
