import { describe, expect, it } from 'vitest';
import { chunkBySize } from '../../shared/chunks.js';

describe('chunkBySize', () => {
  it('keeps order and bounds each chunk by count and by size', () => {
    const sizes = [5, 5, 5, 9, 1, 1, 1, 1, 20, 2];
    const chunks = chunkBySize(sizes, 3, 10, (size) => size);
    expect(chunks).toEqual([[5, 5], [5], [9, 1], [1, 1, 1], [20], [2]]);
    expect(chunks.flat()).toEqual(sizes);
  });

  it('gives nothing for nothing', () => {
    expect(chunkBySize([], 3, 10, () => 1)).toEqual([]);
  });
});
