import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // e2e tests spawn real git processes; keep them from starving each other on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default leaves one core free, which on the 2-core CI machine runs one file at a time
    // (wall time = the sum of the files' times). Two at once: e2e files spend much of their time
    // waiting on git and on the filter processes they spawn.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
