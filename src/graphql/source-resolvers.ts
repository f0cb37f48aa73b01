import type { IFieldResolver, IResolvers } from '@graphql-tools/utils';
import { GatewayError } from '../errors.js';
import type { SchemaBindings, TableBinding } from '../sources/bindings.js';
import { type DataRecord, encodeCursor, type Page, ROW } from '../sources/sql/tenant-data.js';
import type { GatewayContext } from './context.js';
import { createProjector } from './projection.js';

type Resolver = IFieldResolver<unknown, GatewayContext, Record<string, unknown>>;
type ResolverMap = Record<string, Record<string, Resolver>>;

function set(map: ResolverMap, type: string, field: string, resolver: Resolver): void {
  (map[type] ??= {})[field] = resolver;
}

/** A feature of a tenant's model read off a record: by field name, else by column. */
function featureValue(table: TableBinding | undefined, record: DataRecord, feature: string) {
  if (Object.hasOwn(record, feature)) return record[feature];
  const column = table?.columns.find((c) => c.column === feature);
  return column ? record[column.field] : record[ROW]?.[feature];
}

/**
 * Resolvers generated from the bindings: each reads through the request's tenant-scoped
 * `data` (batched per binding and argument shape) or `predictions` (one batch per model).
 * Connection types get their `edges` and `pageInfo` here too.
 */
export function sourceResolvers(bindings: SchemaBindings): ResolverMap {
  const map: ResolverMap = {};
  // Each read selects the columns its field's selection needs (see projection.ts).
  const projector = createProjector(bindings);
  for (const binding of bindings.fields) {
    switch (binding.kind) {
      case 'lookup':
        set(map, binding.parent, binding.field, (_parent, args, { data, tenant }, info) =>
          data.lookup(binding, args[binding.argument], projector.rows(binding.table, info, tenant)),
        );
        break;
      case 'connection':
        set(map, binding.parent, binding.field, (_parent, args, { data, tenant }, info) =>
          data.page(binding, args, projector.rows(binding.table, info, tenant)),
        );
        set(map, binding.connectionType, 'edges', (page) => {
          const { rows, table } = page as Page;
          return rows.map((node) => ({ cursor: encodeCursor(node[ROW][table.key.column]), node }));
        });
        set(map, binding.connectionType, 'pageInfo', (page) => {
          const { rows, table, hasNextPage } = page as Page;
          const last = rows.at(-1);
          return {
            hasNextPage,
            endCursor: last ? encodeCursor(last[ROW][table.key.column]) : null,
          };
        });
        break;
      case 'relation':
        set(map, binding.parent, binding.field, (parent, args, { data, tenant }, info) =>
          data.related(
            binding,
            parent as DataRecord,
            args,
            projector.rows(binding.to, info, tenant),
          ),
        );
        break;
      case 'insert':
        set(map, binding.parent, binding.field, (_parent, args, { data, tenant }, info) =>
          data.insert(
            binding,
            (args[binding.argument] ?? {}) as Record<string, unknown>,
            projector.rows(binding.table, info, tenant),
          ),
        );
        break;
      case 'infer':
        set(map, binding.parent, binding.field, (parent, _args, { predictions }) =>
          predictions.load(
            binding.model,
            predictions.featuresOf(binding.model, (feature) =>
              featureValue(binding.table, parent as DataRecord, feature),
            ),
          ),
        );
        break;
      case 'http':
        set(map, binding.parent, binding.field, (parent, args, { services }) =>
          services.resolve(binding, parent, args),
        );
        break;
    }
  }
  return map;
}

/**
 * Wraps the resolvers of `@requiresScopes` fields: a caller without every scope gets FORBIDDEN
 * naming them, before the field's source is asked anything.
 */
export function withScopes(
  resolvers: IResolvers<unknown, GatewayContext>,
  bindings: SchemaBindings,
): IResolvers<unknown, GatewayContext> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [type, fields] of Object.entries(resolvers)) {
    out[type] = fields as Record<string, unknown>;
  }
  for (const [at, scopes] of bindings.scopes) {
    const [type = '', field = ''] = at.split('.');
    const typeResolvers = { ...(out[type] ?? {}) };
    const inner = typeResolvers[field] as Resolver | undefined;
    const guarded: Resolver = (parent, args, context, info) => {
      const missing = scopes.filter((s) => !context.principal.scopes.includes(s));
      if (missing.length > 0) {
        throw new GatewayError(
          'FORBIDDEN',
          `${field} requires the ${missing.map((s) => `"${s}"`).join(', ')} scope${missing.length > 1 ? 's' : ''}.`,
          { extensions: { missingScopes: missing } },
        );
      }
      return inner
        ? inner(parent, args, context, info)
        : (parent as Record<string, unknown> | null)?.[field];
    };
    typeResolvers[field] = guarded;
    out[type] = typeResolvers;
  }
  return out as IResolvers<unknown, GatewayContext>;
}
