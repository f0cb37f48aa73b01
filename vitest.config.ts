import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Node (and so `npm start` under tsx) loads graphql's CommonJS build, as do Apollo Server and
    // graphql-tools; Vite would give our sources the ESM build, and two graphql realms in one
    // process fail instanceof checks ("Cannot use GraphQLObjectType from another module or realm").
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Integration suites share one PostgreSQL and one Redis; each uses its own database number
    // or schema names, so files may run in parallel, but a 2-core machine gains little past 2.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
