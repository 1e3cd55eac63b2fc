import { assert } from '../../shared/assert.js';
import type { KeyValue } from './types.js';

/** A position in the store's history: the main revision of a write and its place inside it. */
export interface Revision {
  readonly main: number;
  readonly sub: number;
}

export interface KeyRevision extends Revision {
  readonly tombstone: boolean;
}

/**
 * Everything the store remembers about one key, in memory.
 *
 * Example: put a@2, put a@3, delete a@4, put a@6 gives revisions
 *   [2 put, 3 put, 4 tombstone, 6 put] and `latest` = the value written at 6 (version 1).
 * A read at revision 5 finds 4 (a tombstone): the key did not exist then. A read at 3 finds 3.
 * Compacting at 4 keeps only [6 put]: nothing before the tombstone can be read any more.
 * Compacting at 3 keeps [3 put, 4 tombstone, 6 put]: 3 is still the state at revision 3.
 */
export class KeyHistory {
  readonly revisions: KeyRevision[] = [];
  /** The live value at the newest revision, or null when the newest revision is a tombstone. */
  latest: KeyValue | null = null;

  constructor(readonly key: Buffer) {}

  append(revision: KeyRevision, value: KeyValue | null): void {
    const last = this.revisions[this.revisions.length - 1];
    assert(
      last === undefined || last.main < revision.main || (last.main === revision.main && last.sub < revision.sub),
      'key revisions must grow',
    );
    this.revisions.push(revision);
    this.latest = value;
  }

  /** The newest revision at or below `main`, or undefined when the key had no revision then. */
  at(main: number): KeyRevision | undefined {
    const revs = this.revisions;
    let low = 0;
    let high = revs.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((revs[mid] as KeyRevision).main <= main) low = mid + 1;
      else high = mid;
    }
    return low === 0 ? undefined : revs[low - 1];
  }

  newest(): KeyRevision | undefined {
    return this.revisions[this.revisions.length - 1];
  }

  /** The revision just before `revision` in this key's history (for a watcher's prev_kv). */
  before(revision: Revision): KeyRevision | undefined {
    for (let i = this.revisions.length - 1; i >= 0; i--) {
      const r = this.revisions[i] as KeyRevision;
      if (r.main < revision.main || (r.main === revision.main && r.sub < revision.sub)) return r;
    }
    return undefined;
  }

  /**
   * Drops history that no read at or above `compactRev` can reach; returns the dropped revisions
   * so the backend can delete their rows. The key is empty afterwards when nothing is readable.
   */
  compact(compactRev: number): KeyRevision[] {
    const revs = this.revisions;
    let keepFrom = 0;
    for (let i = 0; i < revs.length; i++) {
      if ((revs[i] as KeyRevision).main <= compactRev) keepFrom = i;
      else break;
    }
    const first = revs[keepFrom];
    if (first === undefined || first.main > compactRev) return [];
    // The newest revision at or below compactRev is kept unless it is a tombstone.
    const dropUntil = first.tombstone ? keepFrom + 1 : keepFrom;
    return revs.splice(0, dropUntil);
  }

  isEmpty(): boolean {
    return this.revisions.length === 0;
  }
}
