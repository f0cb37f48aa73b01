import {
  type GraphQLResolveInfo,
  type GraphQLSchema,
  isAbstractType,
  isObjectType,
  type OperationDefinitionNode,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { HttpBinding, SchemaBindings, TableBinding } from '../sources/bindings.js';
import { fullProjection, type Projection, projectionOf } from '../sources/sql/projection.js';
import type { Tenant } from '../tenancy/tenant.js';

/** What answering one field of a table type needs of its row. */
interface Need {
  readonly columns: readonly string[];
  /** Models whose features (named in each tenant's config) are read off the row. */
  readonly models: readonly string[];
  /** Anything: an operator's resolver, or a field no binding explains. */
  readonly all: boolean;
}

const NOTHING: Need = { columns: [], models: [], all: false };
const ALL: Need = { columns: [], models: [], all: true };

/** What an operation asks of one table's rows, before the tenant is known. */
interface Asked {
  all: boolean;
  readonly columns: Set<string>;
  readonly models: Set<string>;
  /** The projection when no model is asked (the same for every tenant). */
  fixed: Projection | undefined;
  /** Per tenant configuration, when models are (their features are the tenant's). */
  readonly byTenant: WeakMap<Tenant, Projection>;
}

/**
 * Works out the columns a read of a table selects: those the whole operation asks of that
 * table's rows, wherever it selects them — column fields, the columns its relations join on,
 * the features its `@infer` fields read (from the tenant's model config) and the names its
 * `@http` templates read — and the key. Every read of a table in one operation selects the
 * same columns, so rows one read primes answer the others' lookups and their batches are one
 * statement, as without projection. Anything it cannot account for (an operator's resolver on
 * a table type, a field a schema variant added) selects every column, so a record never lacks
 * what a resolver reads; `@include`/`@skip` are not evaluated (a field under either counts).
 * Worked out once per operation and schema variant, cached on the operation's AST node (which
 * the document cache keeps), then once per tenant configuration for the features.
 */
export interface Projector {
  /** The projection of `table`'s rows in the operation `info` belongs to. */
  rows(table: TableBinding, info: GraphQLResolveInfo, tenant: Tenant): Projection;
}

/** The parent names an `@http` field's templates read. */
function httpNames(binding: HttpBinding): string[] {
  const names: string[] = [];
  const parts = [...binding.path, ...binding.query.flatMap((q) => q.value)];
  for (const part of parts) if ('from' in part && part.from === 'parent') names.push(part.name);
  for (const match of JSON.stringify(binding.body ?? null).matchAll(
    /\{parent\.([A-Za-z_]\w*)\}/g,
  )) {
    names.push(match[1] as string);
  }
  if (binding.batch) names.push(binding.batch.by);
  return names;
}

function needsOf(bindings: SchemaBindings): Map<string, Map<string, Need>> {
  const byType = new Map<string, Map<string, Need>>();
  for (const table of bindings.tables.values()) {
    const fields = new Map<string, Need>([['__typename', NOTHING]]);
    for (const column of table.columns) {
      fields.set(column.field, { columns: [column.column], models: [], all: false });
    }
    byType.set(table.type, fields);
  }
  for (const binding of bindings.fields) {
    const fields = byType.get(binding.parent);
    if (!fields) continue;
    const table = bindings.tables.get(binding.parent);
    if (binding.kind === 'relation') {
      fields.set(binding.field, { columns: [binding.parentColumn], models: [], all: false });
    } else if (binding.kind === 'infer') {
      fields.set(binding.field, { columns: [], models: [binding.model], all: false });
    } else if (binding.kind === 'http' && table) {
      // A name is a column field or a column (tenant-services.ts reads the record, then the row).
      const columns: string[] = [];
      let all = false;
      for (const name of httpNames(binding)) {
        const column =
          table.columns.find((c) => c.field === name)?.column ??
          table.columns.find((c) => c.column === name)?.column ??
          table.joinColumns.find((c) => c === name);
        if (column === undefined) all = true;
        else columns.push(column);
      }
      fields.set(binding.field, all ? ALL : { columns, models: [], all: false });
    }
  }
  return byType;
}

/** Every table's asked columns in one operation (and the fragments it may spread). */
function askedIn(
  needs: ReadonlyMap<string, ReadonlyMap<string, Need>>,
  tables: ReadonlyMap<string, TableBinding>,
  info: GraphQLResolveInfo,
): Map<string, Asked> {
  const asked = new Map<string, Asked>();
  const of = (type: string): Asked => {
    let entry = asked.get(type);
    if (!entry) {
      entry = {
        all: false,
        columns: new Set(),
        models: new Set(),
        fixed: undefined,
        byTenant: new WeakMap(),
      };
      asked.set(type, entry);
    }
    return entry;
  };
  const add = (type: string, field: string) => {
    const fields = needs.get(type);
    if (!fields) return;
    const need = fields.get(field) ?? ALL;
    const entry = of(type);
    if (need.all) entry.all = true;
    for (const column of need.columns) entry.columns.add(column);
    for (const model of need.models) entry.models.add(model);
  };
  const typeInfo = new TypeInfo(info.schema);
  const visitor = visitWithTypeInfo(typeInfo, {
    Field(node) {
      const parent = typeInfo.getParentType();
      if (!parent) return;
      if (isObjectType(parent)) add(parent.name, node.name.value);
      else if (isAbstractType(parent)) {
        // A field of an interface or union: every table type it may be that has the field.
        for (const type of info.schema.getPossibleTypes(parent)) {
          if (node.name.value in type.getFields()) add(type.name, node.name.value);
        }
      }
    },
  });
  visit(info.operation, visitor);
  for (const fragment of Object.values(info.fragments)) visit(fragment, visitor);
  for (const [type, entry] of asked) {
    const table = tables.get(type) as TableBinding;
    if (entry.all) entry.fixed = fullProjection(table);
    else if (entry.models.size === 0) entry.fixed = projectionOf(table, entry.columns);
  }
  return asked;
}

export function createProjector(bindings: SchemaBindings): Projector {
  const needs = needsOf(bindings);
  const cache = new WeakMap<OperationDefinitionNode, WeakMap<GraphQLSchema, Map<string, Asked>>>();

  /** A model feature is a column field's name or a column's (source-resolvers.ts reads both). */
  function featureColumns(table: TableBinding, feature: string): string[] {
    const columns = table.columns.filter((c) => c.field === feature || c.column === feature);
    if (columns.length > 0) return columns.map((c) => c.column);
    return table.joinColumns.includes(feature) ? [feature] : [];
  }

  return {
    rows(table, info, tenant) {
      let bySchema = cache.get(info.operation);
      if (!bySchema) {
        bySchema = new WeakMap();
        cache.set(info.operation, bySchema);
      }
      let asked = bySchema.get(info.schema);
      if (!asked) {
        asked = askedIn(needs, bindings.tables, info);
        bySchema.set(info.schema, asked);
      }
      const entry = asked.get(table.type);
      // A table the walk did not meet (an operator's resolver reading it): every column.
      if (!entry) return fullProjection(table);
      if (entry.fixed) return entry.fixed;
      let projection = entry.byTenant.get(tenant);
      if (!projection) {
        const columns = new Set(entry.columns);
        for (const model of entry.models) {
          const config = Object.hasOwn(tenant.models, model) ? tenant.models[model] : undefined;
          for (const feature of config?.features ?? []) {
            for (const column of featureColumns(table, feature)) columns.add(column);
          }
        }
        projection = projectionOf(table, columns);
        entry.byTenant.set(tenant, projection);
      }
      return projection;
    },
  };
}
