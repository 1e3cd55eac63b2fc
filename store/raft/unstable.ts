import { assert } from '../../shared/assert.js';
import type { Entry, Snapshot } from './types.js';

/**
 * The tail of the log that is not yet in stable storage, plus a snapshot received from the leader
 * and not yet installed. `entries[i]` has index `offset + i`; a pending snapshot covers every index
 * before `offset`. Both are handed out in the next Ready and dropped here by advance().
 *
 * Example: storage holds 1..5, the leader sends 4..7 with a new term at 4. truncateAndAppend moves
 * `offset` back to 4, so entries 4..7 here shadow storage's 4..5 until the Ready is persisted and
 * storage truncates its own 4..5.
 */
export class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  offset: number;

  constructor(offset: number) {
    assert(Number.isSafeInteger(offset) && offset >= 1, `unstable offset ${offset}`);
    this.offset = offset;
  }

  maybeFirstIndex(): number | null {
    return this.snapshot === null ? null : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot === null ? null : this.snapshot.metadata.index;
  }

  maybeTerm(index: number): number | null {
    if (index < this.offset) {
      const snapshot = this.snapshot;
      return snapshot !== null && snapshot.metadata.index === index ? snapshot.metadata.term : null;
    }
    const entry = this.entries[index - this.offset];
    return entry === undefined ? null : entry.term;
  }

  /** Entries up to (index, term) reached stable storage; the term check ignores a stale ack. */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.maybeTerm(index) !== term) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === index) this.snapshot = null;
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.entries = [];
    this.snapshot = snapshot;
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0];
    assert(first !== undefined, 'truncateAndAppend needs entries');
    const after = first.index;
    if (after === this.offset + this.entries.length) {
      this.entries.push(...entries);
    } else if (after <= this.offset) {
      // The new entries replace part of what storage holds; they shadow it until persisted.
      this.offset = after;
      this.entries = [...entries];
    } else {
      this.entries = [...this.entries.slice(0, after - this.offset), ...entries];
    }
  }

  /** Entries [low, high), which must lie inside the unstable range. */
  slice(low: number, high: number): Entry[] {
    const upper = this.offset + this.entries.length;
    assert(this.offset <= low && low <= high && high <= upper, `unstable slice [${low},${high})`);
    return this.entries.slice(low - this.offset, high - this.offset);
  }
}
