import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A Raft snapshot's data, as far as the Raft core knows it, is opaque bytes. Between members it is
 * a database file of any size, so the bytes the core carries are only a reference to a file on
 * this member's disk: the leader writes the file (online backup), the transport streams it to the
 * follower in chunks into the follower's own snapshot directory, and the follower's reference
 * names that copy. No member ever holds a whole database in one buffer.
 */
const MAGIC = Buffer.from('etcron-snapshot-file\u0000');

export interface SnapshotFileRef {
  readonly path: string;
  readonly bytes: number;
}

export function encodeSnapshotRef(ref: SnapshotFileRef): Uint8Array {
  return Buffer.concat([MAGIC, Buffer.from(JSON.stringify(ref))]);
}

/** The file a snapshot's data refers to, or null for data that is the database itself. */
export function decodeSnapshotRef(data: Uint8Array): SnapshotFileRef | null {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length <= MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  try {
    const value = JSON.parse(bytes.subarray(MAGIC.length).toString('utf8')) as Partial<SnapshotFileRef>;
    return typeof value.path === 'string' && typeof value.bytes === 'number' ? { path: value.path, bytes: value.bytes } : null;
  } catch {
    return null;
  }
}

/** The member's snapshot directory, emptied of files a stop left behind (partial receives, old copies). */
export function prepareSnapshotDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { force: true });
  return dir;
}
