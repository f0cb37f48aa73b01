import { readdirSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { IResolvers } from '@graphql-tools/utils';
import type { GraphQLSchema } from 'graphql';
import { globSync } from 'tinyglobby';
import { readBindings, SchemaBindingError } from './bindings.js';
import type { GatewayContext } from './context.js';
import { engineResolvers } from './engine-resolvers.js';
import { sourceResolvers, withScopes } from './source-resolvers.js';
import type { SchemaBindings } from '../sources/bindings.js';
import { importableModuleFile } from '../util/module-file.js';

export { SchemaBindingError };

const ENGINE_DIR = new URL('./engine/', import.meta.url);

/** The engine's own SDL: source directives, @cost/@listSize/@feature, viewer, models, predict. */
export const ENGINE_TYPE_DEFS: readonly string[] = readdirSync(ENGINE_DIR)
  .filter((name) => name.endsWith('.graphql'))
  .sort()
  .map((name) => readFileSync(new URL(name, ENGINE_DIR), 'utf8'));

export type OperatorResolvers = IResolvers<unknown, GatewayContext>;

export interface GatewaySchema {
  schema: GraphQLSchema;
  bindings: SchemaBindings;
  /** `Type.field` answered by the operator's resolver module: not batched by the engine. */
  resolved: ReadonlySet<string>;
}

export interface BuildSchemaOptions {
  /** The operator's SDL documents. */
  typeDefs: readonly string[];
  /** The operator's resolvers for what no directive expresses. */
  resolvers?: OperatorResolvers | undefined;
}

function fieldsOf(resolvers: OperatorResolvers | undefined): Set<string> {
  const fields = new Set<string>();
  for (const [type, value] of Object.entries(resolvers ?? {})) {
    if (typeof value !== 'object' || value === null || type.startsWith('__')) continue;
    for (const field of Object.keys(value)) {
      if (!field.startsWith('__')) fields.add(`${type}.${field}`);
    }
  }
  return fields;
}

function merge(
  ...maps: IResolvers<unknown, GatewayContext>[]
): IResolvers<unknown, GatewayContext> {
  const out: Record<string, unknown> = {};
  for (const map of maps) {
    for (const [type, value] of Object.entries(map)) {
      const previous = out[type];
      out[type] =
        previous &&
        typeof previous === 'object' &&
        typeof value === 'object' &&
        !('serialize' in value)
          ? { ...previous, ...value }
          : value;
    }
  }
  return out as IResolvers<unknown, GatewayContext>;
}

/**
 * The executable schema from the operator's SDL: the engine's SDL added, the source
 * directives read into bindings (a SchemaBindingError names what cannot be honoured), the
 * resolvers generated from them, the operator's own merged in.
 */
export function buildGatewaySchema(options: BuildSchemaOptions): GatewaySchema {
  const typeDefs = [...ENGINE_TYPE_DEFS, ...options.typeDefs];
  const resolved = fieldsOf(options.resolvers);
  const bare = makeExecutableSchema({ typeDefs });
  const bindings = readBindings(bare, { resolved });
  const generated = sourceResolvers(bindings);
  for (const at of resolved) {
    const [type = '', field = ''] = at.split('.');
    if (generated[type]?.[field] !== undefined) {
      throw new SchemaBindingError(
        `[at ${at}] has a source directive and a resolver in schema.resolvers; keep one`,
      );
    }
  }
  const resolvers = withScopes(
    merge(engineResolvers, generated as OperatorResolvers, options.resolvers ?? {}),
    bindings,
  );
  return { schema: makeExecutableSchema({ typeDefs, resolvers }), bindings, resolved };
}

/** Reads `schema.files` (globs) and imports `schema.resolvers`, then builds the schema. */
export async function loadGatewaySchema(config: {
  files: readonly string[];
  resolvers?: string | undefined;
}): Promise<GatewaySchema> {
  const paths = [
    ...new Set(config.files.flatMap((pattern) => globSync(pattern, { absolute: true }))),
  ].sort();
  if (paths.length === 0) {
    throw new SchemaBindingError(`schema.files matched no file: ${config.files.join(', ')}`);
  }
  const typeDefs = paths.map((path) => readFileSync(path, 'utf8'));
  let resolvers: OperatorResolvers | undefined;
  if (config.resolvers !== undefined) {
    const module = (await import(pathToFileURL(importableModuleFile(config.resolvers)).href)) as {
      resolvers?: OperatorResolvers;
    };
    if (typeof module.resolvers !== 'object' || module.resolvers === null) {
      throw new SchemaBindingError(
        `schema.resolvers ${config.resolvers} must export an object named "resolvers"`,
      );
    }
    resolvers = module.resolvers;
  }
  return buildGatewaySchema({ typeDefs, resolvers });
}
