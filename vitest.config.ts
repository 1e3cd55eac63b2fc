import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Process-level tests start real servers; two cores cannot take many at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
