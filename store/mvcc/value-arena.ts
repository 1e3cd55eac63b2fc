import { assert } from '../../shared/assert.js';

/**
 * Where the store keeps the newest value of every key (issue #3: resident memory).
 *
 * One Buffer per value costs a ~96-byte typed-array object on the V8 heap besides the bytes, and
 * copies taken from Node's shared 8 KiB pool sit between short-lived buffers of the request path,
 * which keep half of each pool slab dead once they go. Here values are packed into slabs that hold
 * values only; a key refers to its value by (slab, offset, length) and readers get a view.
 *
 * A slab stays alive as long as one key refers to it, so overwrites leave holes. Each slab counts
 * its live bytes; `isSparse` tells the store which values to move (see MvccStore.relocateValues),
 * which bounds the holes to about half of the slab bytes after every relocation pass.
 */
export const SLAB_BYTES = 64 * 1024;
/** Values above this get a slab of their own, so one big value never strands a shared slab. */
export const SHARED_VALUE_BYTES_MAX = SLAB_BYTES / 8;

export class ValueSlab {
  /** Bytes handed out so far; the free space is bytes.length - used. */
  used = 0;
  /** Bytes of values that keys still refer to; used - liveBytes are holes. */
  liveBytes = 0;
  /** Whether the arena's slab total still includes this slab (false once nothing in it is live). */
  isCounted = true;

  constructor(readonly bytes: Buffer, readonly isShared: boolean) {}

  /** A view of `length` bytes at `offset`; no copy. */
  view(offset: number, length: number): Buffer {
    return this.bytes.subarray(offset, offset + length);
  }
}

export class ValueArena {
  private current: ValueSlab | null = null;
  /** Bytes in all slabs that keys refer to, and the bytes of all live slabs (holes included). */
  private liveBytesTotal = 0;
  private slabBytesTotal = 0;

  get liveBytes(): number {
    return this.liveBytesTotal;
  }

  /** Bytes held by slabs beyond the values in them (the current slab's free tail included). */
  get holeBytes(): number {
    return this.slabBytesTotal - this.liveBytesTotal;
  }

  /**
   * Copies `value` into a slab and returns that slab. The value is the last bytes handed out, so
   * it sits at `slab.used - value.length` when this returns. Empty values need no slab: null.
   */
  store(value: Uint8Array): ValueSlab | null {
    const length = value.length;
    if (length === 0) return null;
    const slab =
      length > SHARED_VALUE_BYTES_MAX ? this.newSlab(length, false) : this.slabWithRoom(length);
    slab.bytes.set(value, slab.used);
    slab.used += length;
    slab.liveBytes += length;
    this.liveBytesTotal += length;
    assert(slab.used <= slab.bytes.length, 'value fits its slab');
    return slab;
  }

  /** A key no longer refers to `length` bytes of `slab`. */
  release(slab: ValueSlab, length: number): void {
    assert(slab.liveBytes >= length, 'released bytes were live');
    slab.liveBytes -= length;
    this.liveBytesTotal -= length;
    // A slab with no live value is garbage once the last view of it goes: stop counting it.
    if (slab.liveBytes === 0 && slab !== this.current) this.forget(slab);
  }

  /** Whether the values of `slab` should move to fuller slabs: less than half of it is live. */
  isSparse(slab: ValueSlab): boolean {
    return slab.isShared && slab !== this.current && slab.liveBytes * 2 < slab.bytes.length;
  }

  private slabWithRoom(length: number): ValueSlab {
    const current = this.current;
    if (current !== null && current.bytes.length - current.used >= length) return current;
    if (current !== null && current.liveBytes === 0) this.forget(current);
    this.current = this.newSlab(SLAB_BYTES, true);
    return this.current;
  }

  private newSlab(sizeBytes: number, isShared: boolean): ValueSlab {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    const slab = new ValueSlab(Buffer.allocUnsafeSlow(sizeBytes), isShared);
    this.slabBytesTotal += sizeBytes;
    return slab;
  }

  private forget(slab: ValueSlab): void {
    if (!slab.isCounted) return;
    slab.isCounted = false;
    this.slabBytesTotal -= slab.bytes.length;
  }
}
