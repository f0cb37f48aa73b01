import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import type { Resolvers } from './generated/resolvers-types.js';
import * as inference from './resolvers/inference.js';
import { Mutation } from './resolvers/mutation.js';
import { Query } from './resolvers/query.js';
import { DateTime } from './resolvers/scalars.js';
import { Customer, CustomerConnection, Order, Tenant, Viewer } from './resolvers/types.js';

/** The SDL lives in the repository's schema/ folder, next to src/. */
export const SCHEMA_DIR = fileURLToPath(new URL('../../schema/', import.meta.url));

export function loadTypeDefs(dir: string = SCHEMA_DIR): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.graphql'))
    .sort()
    .map((name) => readFileSync(`${dir}/${name}`, 'utf8'));
}

export const resolvers: Resolvers = {
  DateTime,
  Query: { ...Query, ...inference.inferenceQuery },
  Mutation,
  Viewer,
  Tenant,
  CustomerConnection,
  Customer: { ...Customer, ...inference.Customer },
  Order: { ...Order, ...inference.Order },
  ModelInfo: inference.ModelInfo,
};

export function createSchema(typeDefs: string[] = loadTypeDefs()): GraphQLSchema {
  return makeExecutableSchema({ typeDefs, resolvers });
}
