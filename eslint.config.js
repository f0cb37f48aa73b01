import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Layering from DESIGN.md, enforced so that a wrong import fails `npm test` instead of waiting
// for review. Each src/ folder lists the folders it must never import (arrows point down only).
const layers = {
  server: [],
  graphql: ['server'],
  // The source kinds (sql, inference): bindings → loaders → backend calls, under graphql/.
  sources: ['server', 'graphql'],
  loaders: ['server', 'graphql', 'sources'],
  limits: ['server', 'graphql', 'loaders', 'sources'],
  backends: ['server', 'graphql', 'loaders', 'limits', 'sources'],
  auth: ['server', 'graphql', 'loaders', 'limits', 'backends', 'sources'],
  tenancy: ['server', 'graphql', 'loaders', 'limits', 'backends', 'sources'],
  store: ['server', 'graphql', 'loaders', 'limits', 'backends', 'sources', 'auth', 'tenancy'],
  telemetry: [
    'server',
    'graphql',
    'loaders',
    'limits',
    'backends',
    'sources',
    'auth',
    'tenancy',
    'store',
  ],
  config: [
    'server',
    'graphql',
    'loaders',
    'limits',
    'backends',
    'sources',
    'auth',
    'tenancy',
    'store',
    'telemetry',
  ],
};
const noGraphqlPackage = new Set([
  'limits',
  'sources',
  'loaders',
  'backends',
  'auth',
  'tenancy',
  'store',
  'telemetry',
  'config',
]);
const always = [
  { group: ['**/main.js'], message: 'Nothing imports main.ts (DESIGN.md).' },
  { group: ['**/app.js'], message: 'Only main.ts imports the composition root (src/app.ts).' },
  {
    group: ['**/services/model-server/**'],
    message: 'The gateway talks to the model server over HTTP only.',
  },
];

// Below the GraphQL layer no GraphQL or Apollo code at all: not `graphql/…` subpaths, not any
// `@apollo/*` package (GraphQL errors are made at the edge from the coded errors).
const graphqlPackages = (dir) => [
  {
    group: ['graphql/*', '@apollo/*', '@graphql-tools/*', 'graphql-*'],
    message: `${dir}/ is below the GraphQL layer: no graphql, @apollo/* or @graphql-tools/* imports (DESIGN.md).`,
  },
];

const layerBlocks = Object.entries(layers).map(([dir, banned]) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        paths: noGraphqlPackage.has(dir)
          ? [{ name: 'graphql', message: `${dir}/ never imports graphql (DESIGN.md).` }]
          : [],
        patterns: [
          ...always,
          ...(noGraphqlPackage.has(dir) ? graphqlPackages(dir) : []),
          ...banned.map((b) => ({
            group: [`../${b}/**`, `../../${b}/**`, `../${b}.js`, `../../${b}.js`],
            message: `${dir}/ must not import ${b}/ (DESIGN.md: imports point down).`,
          })),
        ],
      },
    ],
  },
}));

// src/util/ is the bottom layer: every folder may import it, and it imports no other src/ code.
const utilBlock = {
  files: ['src/util/**/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        paths: [{ name: 'graphql', message: 'util/ never imports graphql.' }],
        patterns: [
          ...always,
          ...graphqlPackages('util'),
          {
            group: ['../**'],
            message: 'util/ imports no other src/ folder (it is the bottom layer).',
          },
        ],
      },
    ],
  },
};

// The coded errors every layer throws are plain errors: src/errors.ts imports no GraphQL code
// (graphql/errors.ts makes a GraphQLError of one at the edge).
const errorsBlock = {
  files: ['src/errors.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        paths: [{ name: 'graphql', message: 'src/errors.ts imports no GraphQL code.' }],
        patterns: [
          {
            group: ['graphql/*', '@apollo/*', '@graphql-tools/*', 'graphql-*'],
            message: 'src/errors.ts imports no GraphQL code.',
          },
        ],
      },
    ],
  },
};

// The environment is read in src/config/ alone (DESIGN.md); everything else gets a parsed config.
const envMessage =
  'process.env is read in src/config/ only: take the value from the parsed config.';
const envBlock = {
  files: ['src/**/*.ts'],
  ignores: ['src/config/**'],
  rules: {
    'no-restricted-properties': [
      'error',
      { object: 'process', property: 'env', message: envMessage },
    ],
    'no-restricted-syntax': [
      'error',
      {
        selector: "MemberExpression[object.property.name='process'][property.name='env']",
        message: envMessage,
      },
      {
        selector:
          "ImportDeclaration[source.value=/^(node:)?process$/] > ImportSpecifier[imported.name='env']",
        message: envMessage,
      },
    ],
  },
};

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      // Local worktrees and demo state, never in a clone.
      '.wt/**',
      '.atrium/**',
      'dist/**',
      'src/graphql/generated/**',
      'services/model-server/models/**',
      'coverage/**',
      'test-artifacts/**',
      'bench/results/**',
      // Local state, gitignored: dev keys, and the bench's checkouts of other commits.
      '.atrium/**',
      'playground/dist/**',
      'playground/.build-*/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // With verbatimModuleSyntax, `import { type A }` still loads the module at run time;
      // an import of types only must be `import type`, so it costs nothing.
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    // The hardening batteries (security, backend faults, shutdown) print what they tried and saw.
    files: [
      'src/main.ts',
      'scripts/**',
      'bench/**',
      'services/**',
      'test/security/**',
      'test/integration/hardening/**',
      'test/integration/data-plane/**',
      'test/e2e/shutdown.test.ts',
    ],
    rules: { 'no-console': 'off' },
  },
  ...layerBlocks,
  utilBlock,
  errorsBlock,
  envBlock,
);
