/** What the bbolt writer and reader share: the file format's constants and the meta checksum. */
export const BOLT_MAGIC = 0xed0cdaed;
export const BOLT_VERSION = 2;
export const PAGE_HEADER_BYTES = 16;
export const ELEMENT_BYTES = 16;
export const FLAG_BRANCH = 0x01;
export const FLAG_LEAF = 0x02;
export const FLAG_META = 0x04;
export const FLAG_FREELIST = 0x10;
export const ELEMENT_FLAG_BUCKET = 0x01;
/** The meta's fields before its checksum, which is the FNV-1a 64 of them. */
export const META_CHECKSUMMED_BYTES = 56;

export function fnv1a64(bytes: Buffer): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}
