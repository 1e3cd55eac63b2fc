import { assert } from '../../shared/assert.js';
import type { ValueSlab } from './value-arena.js';

/** A position in the store's history: the main revision of a write and its place inside it. */
export interface Revision {
  readonly main: number;
  readonly sub: number;
}

export interface KeyRevision extends Revision {
  readonly tombstone: boolean;
}

/** The lease of a key without one; shared so that 200k keys do not hold 200k BigInt objects. */
export const NO_LEASE = 0n;

/**
 * Everything the store remembers about one key, in memory, packed for size (issue #3): one object
 * per key, numbers in its own fields, no object per revision. Most keys have exactly one revision,
 * which lives in `main`/`sub`/`isTombstone`; earlier revisions, when there are any, sit in `older`
 * as two numbers each (main, then sub * 2 + 1 for a tombstone or sub * 2 for a put), oldest first.
 *
 * Example: put a@2, put a@3, delete a@4, put a@6 gives older = [2, 0, 3, 0, 4, 1] and the newest
 * revision 6 (a put, version 1, its value in the arena). A read at revision 5 finds 4 (a
 * tombstone): the key did not exist then. A read at 3 finds 3. Compacting at 4 keeps only 6:
 * nothing before the tombstone can be read any more. Compacting at 3 keeps 3, 4 and 6, since 3 is
 * still the state at revision 3.
 *
 * The live state (create revision, version, lease, value) describes the newest revision only and
 * means nothing when that revision is a tombstone; older states are read from the backend.
 */
export class KeyHistory {
  main: number;
  sub: number;
  isTombstone: boolean;
  createRevision = 0;
  version = 0;
  lease: bigint = NO_LEASE;
  /** The value's bytes are valueSlab.bytes[valueOffset, valueOffset + valueLength); null: empty. */
  valueSlab: ValueSlab | null = null;
  valueOffset = 0;
  valueLength = 0;
  private older: number[] | null = null;

  constructor(main: number, sub: number, isTombstone: boolean) {
    this.main = main;
    this.sub = sub;
    this.isTombstone = isTombstone;
  }

  /** Makes (main, sub) the newest revision; the caller then sets the live state. */
  append(main: number, sub: number, isTombstone: boolean): void {
    assert(main > this.main || (main === this.main && sub > this.sub), 'key revisions must grow');
    // An array literal is allocated at its size; a push onto [] would reserve 17 slots.
    if (this.older === null) this.older = [this.main, packSub(this.sub, this.isTombstone)];
    else this.older.push(this.main, packSub(this.sub, this.isTombstone));
    this.main = main;
    this.sub = sub;
    this.isTombstone = isTombstone;
  }

  /** How many revisions the key has in memory. */
  get revisionCount(): number {
    return this.older === null ? 1 : this.older.length / 2 + 1;
  }

  /** The newest revision at or below `main`, or undefined when the key had no revision then. */
  at(main: number): KeyRevision | undefined {
    if (this.main <= main) return { main: this.main, sub: this.sub, tombstone: this.isTombstone };
    const older = this.older;
    if (older === null) return undefined;
    // Binary search over the pairs for the last one whose main is <= `main`.
    let low = 0;
    let high = older.length / 2;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((older[mid * 2] as number) <= main) low = mid + 1;
      else high = mid;
    }
    return low === 0 ? undefined : this.olderAt(low - 1);
  }

  /**
   * Drops history that no read at or above `compactRev` can reach, reporting each dropped revision
   * so the backend can delete its row. Returns true when nothing is left: the key must go.
   */
  compact(compactRev: number, drop: (main: number, sub: number) => void): boolean {
    const count = this.revisionCount;
    let keepFrom = -1;
    for (let i = 0; i < count; i++) {
      if (this.mainOf(i) <= compactRev) keepFrom = i;
      else break;
    }
    if (keepFrom < 0) return false;
    // The newest revision at or below compactRev is kept unless it is a tombstone.
    const dropUntil = this.isTombstoneAt(keepFrom) ? keepFrom + 1 : keepFrom;
    for (let i = 0; i < dropUntil; i++) drop(this.mainOf(i), this.subOf(i));
    if (dropUntil === count) return true;
    if (dropUntil > 0 && this.older !== null) {
      this.older = dropUntil === count - 1 ? null : this.older.slice(dropUntil * 2);
    }
    return false;
  }

  private olderAt(index: number): KeyRevision {
    const tombstone = this.isTombstoneAt(index);
    return { main: this.mainOf(index), sub: this.subOf(index), tombstone };
  }

  /** Revision `index` counting from the oldest; the newest is index revisionCount - 1. */
  private mainOf(index: number): number {
    const older = this.older;
    if (older === null || index * 2 === older.length) return this.main;
    return older[index * 2] as number;
  }

  private subOf(index: number): number {
    const older = this.older;
    if (older === null || index * 2 === older.length) return this.sub;
    return Math.floor((older[index * 2 + 1] as number) / 2);
  }

  private isTombstoneAt(index: number): boolean {
    const older = this.older;
    if (older === null || index * 2 === older.length) return this.isTombstone;
    return (older[index * 2 + 1] as number) % 2 === 1;
  }
}

/** sub * 2 + tombstone bit: arithmetic, not bit operations, so subs above 2^30 stay exact. */
function packSub(sub: number, isTombstone: boolean): number {
  return sub * 2 + (isTombstone ? 1 : 0);
}
