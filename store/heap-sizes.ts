import { getHeapSpaceStatistics } from 'node:v8';

export interface HeapSizes {
  /** V8's committed heap: the sum of its spaces' sizes. */
  readonly committedBytes: number;
  /** Of which the young generation (V8's new space, both semi-spaces). */
  readonly youngBytes: number;
}

/** Both sizes from one read of V8's heap spaces. */
export function readHeapSizes(): HeapSizes {
  let committedBytes = 0;
  let youngBytes = 0;
  for (const space of getHeapSpaceStatistics()) {
    committedBytes += space.space_size;
    if (space.space_name === 'new_space') youngBytes = space.space_size;
  }
  return { committedBytes, youngBytes };
}
