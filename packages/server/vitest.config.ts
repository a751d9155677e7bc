import { defineConfig } from 'vitest/config';

// The server suites start real server processes and databases: allow them time, and run
// files in parallel processes (each suite has its own database and data directory).
export default defineConfig({
  test: {
    name: '@crate/server',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
