import type { TenantModelConfig } from '../../config/schema.js';
import type { ColumnBinding, ScalarKind, SchemaBindings, TableBinding } from '../bindings.js';
import type { CatalogColumn, TenantCatalog } from './catalog.js';
import { TENANT_COLUMN } from './statements.js';

/** One way a tenant's database does not fit the schema's bindings. */
export interface BindingMismatch {
  tenant: string;
  type: string;
  /** The field (or input field) concerned; absent for a whole-table problem. */
  field?: string | undefined;
  table: string;
  column?: string | undefined;
  problem: string;
}

/** PostgreSQL types each GraphQL kind may read from. */
const FITS: Readonly<Record<ScalarKind, readonly string[]>> = {
  ID: ['text', 'varchar', 'bpchar', 'uuid', 'int2', 'int4', 'int8', 'citext'],
  String: ['text', 'varchar', 'bpchar', 'uuid', 'citext', 'name'],
  Int: ['int2', 'int4'],
  Float: ['float4', 'float8', 'numeric', 'int2', 'int4', 'int8'],
  Boolean: ['bool'],
  DateTime: ['timestamptz', 'timestamp', 'date'],
  Enum: ['text', 'varchar', 'bpchar', 'citext'],
};

/** Types a model feature may be read from: numbers and booleans. */
const NUMERIC = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'bool']);

export function describeMismatch(m: BindingMismatch): string {
  const where = m.field === undefined ? m.type : `${m.type}.${m.field}`;
  const storage = m.column === undefined ? m.table : `${m.table}.${m.column}`;
  return `tenant ${m.tenant}: ${where} → ${storage}: ${m.problem}`;
}

function fits(binding: ColumnBinding, column: CatalogColumn): boolean {
  if (binding.kind === 'Enum' && column.typeKind === 'e') return true;
  return FITS[binding.kind].includes(column.type);
}

export interface CheckTenantInput {
  tenant: {
    id: string;
    strategy: 'schema' | 'row' | 'database';
    models: Record<string, TenantModelConfig>;
  };
  bindings: SchemaBindings;
  catalog: TenantCatalog;
}

/**
 * Every binding against one tenant's real catalog: tables and columns exist, types fit the
 * GraphQL types and their nullability, inputs can be inserted, model features are numeric
 * columns of the parent, and `row` tables carry `tenant_id` under forced row-level security.
 */
export function checkTenantBindings({
  tenant,
  bindings,
  catalog,
}: CheckTenantInput): BindingMismatch[] {
  const problems: BindingMismatch[] = [];
  const add = (table: TableBinding, problem: string, field?: string, column?: string) =>
    problems.push({
      tenant: tenant.id,
      type: table.type,
      field,
      table: table.table,
      column,
      problem,
    });
  const present = new Set<string>();

  for (const table of bindings.tables.values()) {
    const real = catalog.tables.get(table.table);
    if (!real) {
      add(table, `table missing in schema ${catalog.schema}`);
      continue;
    }
    present.add(table.table);
    for (const binding of table.columns) {
      const column = real.columns.get(binding.column);
      if (!column) {
        add(table, 'column missing', binding.field, binding.column);
        continue;
      }
      if (!fits(binding, column)) {
        add(
          table,
          `column type ${column.type} does not fit ${binding.typeName} (expected one of ${FITS[binding.kind].join(', ')})`,
          binding.field,
          binding.column,
        );
      }
      if (binding.nonNull && !column.notNull) {
        add(
          table,
          `column is nullable but ${binding.typeName}! is not`,
          binding.field,
          binding.column,
        );
      }
    }
    for (const name of table.joinColumns) {
      if (!real.columns.has(name))
        add(table, 'column missing (used by a relation)', undefined, name);
    }
    if (tenant.strategy === 'row') {
      if (!real.columns.has(TENANT_COLUMN)) {
        add(table, `the row strategy needs a ${TENANT_COLUMN} column`, undefined, TENANT_COLUMN);
      }
      if (!real.rowSecurity || !real.forceRowSecurity) {
        add(
          table,
          'the row strategy needs row-level security enabled and forced (npm run db:migrate adds it)',
        );
      }
    }
  }

  for (const field of bindings.fields) {
    if (field.kind === 'connection' || field.kind === 'relation') {
      const table = field.kind === 'connection' ? field.table : field.to;
      const real = catalog.tables.get(table.table);
      for (const filter of field.filters) {
        if (real && !real.columns.has(filter.column.column)) {
          add(
            table,
            `column missing (used by @filter ${filter.argument})`,
            field.field,
            filter.column.column,
          );
        }
      }
    }
    if (field.kind === 'insert') {
      const real = catalog.tables.get(field.table.table);
      if (!real) continue;
      for (const input of field.columns) {
        const column = real.columns.get(input.column);
        const where = `${field.inputType}.${input.field}`;
        if (!column) {
          problems.push({
            tenant: tenant.id,
            type: field.inputType,
            field: input.field,
            table: field.table.table,
            column: input.column,
            problem: 'column missing',
          });
        } else if (!fits(input, column)) {
          problems.push({
            tenant: tenant.id,
            type: field.inputType,
            field: input.field,
            table: field.table.table,
            column: input.column,
            problem: `column type ${column.type} does not fit ${input.typeName} (${where})`,
          });
        } else if (!input.nonNull && column.notNull && !column.hasDefault) {
          problems.push({
            tenant: tenant.id,
            type: field.inputType,
            field: input.field,
            table: field.table.table,
            column: input.column,
            problem: `column is NOT NULL without a default, so ${where} must be non-null`,
          });
        }
      }
    }
    if (field.kind === 'infer') {
      const model = Object.hasOwn(tenant.models, field.model)
        ? tenant.models[field.model]
        : undefined;
      if (!model) continue; // answered as FORBIDDEN for this tenant; its variant may hide the field
      const table = field.table;
      if (!table) continue;
      const real = catalog.tables.get(table.table);
      for (const feature of model.features) {
        const binding = table.columns.find((c) => c.field === feature || c.column === feature);
        const column = binding && real?.columns.get(binding.column);
        if (!binding) {
          add(
            table,
            `model ${field.model}'s feature ${feature} is not a column field of ${table.type}`,
            field.field,
          );
        } else if (real && column && !NUMERIC.has(column.type)) {
          add(
            table,
            `model ${field.model}'s feature ${feature} is ${column.type}, not a number or boolean`,
            field.field,
            binding.column,
          );
        }
      }
    }
  }
  return problems;
}
