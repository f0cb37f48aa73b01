import pg from 'pg';
import type { Statement, StatementTarget } from '../../backends/data/types.js';
import type {
  ColumnBinding,
  ConnectionBinding,
  FilterBinding,
  InsertBinding,
  RelationBinding,
  TableBinding,
} from '../bindings.js';
import { fullProjection, type Projection } from './projection.js';

const { escapeIdentifier: q } = pg;

export type { Statement, StatementTarget };

/**
 * Whether a table has a `tenant_id` column, which inserts then fill (the tenant's catalog says;
 * without one, only `row` tables are assumed to have it).
 */
export type TenantColumnOf = (table: string) => boolean;

/** The column every `row`-strategy table has, compared with the tenant in every statement. */
export const TENANT_COLUMN = 'tenant_id';

function tableRef(table: TableBinding, target: StatementTarget): string {
  return `${q(target.schema)}.${q(table.table)}`;
}

/**
 * The select list: every column of the projection once; Float columns as float8 so numerics
 * read as numbers.
 */
export function selectList(
  table: TableBinding,
  projection: Projection = fullProjection(table),
  alias = 't',
): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  const wanted = projection.columns;
  for (const column of table.columns) {
    if (seen.has(column.column) || !wanted.has(column.column)) continue;
    seen.add(column.column);
    const ref = `${alias}.${q(column.column)}`;
    parts.push(column.kind === 'Float' ? `${ref}::float8 AS ${q(column.column)}` : ref);
  }
  for (const column of table.joinColumns) {
    if (seen.has(column) || !wanted.has(column)) continue;
    seen.add(column);
    parts.push(`${alias}.${q(column)}`);
  }
  return parts.join(', ');
}

class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

function tenantCondition(params: Params, target: StatementTarget, alias = 't'): string[] {
  return target.row ? [`${alias}.${q(TENANT_COLUMN)} = ${params.add(target.tenantId)}`] : [];
}

function filterConditions(
  params: Params,
  filters: readonly FilterBinding[],
  args: Readonly<Record<string, unknown>>,
  alias = 't',
): string[] {
  const conditions: string[] = [];
  for (const filter of filters) {
    const value = args[filter.argument];
    if (value === undefined || value === null) continue;
    const column = `${alias}.${q(filter.column.column)}`;
    conditions.push(
      filter.list ? `${column} = ANY(${params.add(value)})` : `${column} = ${params.add(value)}`,
    );
  }
  return conditions;
}

function where(conditions: string[]): string {
  return conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
}

/** Rows whose `column` is one of `values` (a batch of lookups or many-to-one parents). */
export function byColumnStatement(
  operation: string,
  table: TableBinding,
  column: string,
  values: readonly unknown[],
  target: StatementTarget,
  projection?: Projection,
): Statement {
  const params = new Params();
  const conditions = [`t.${q(column)} = ANY(${params.add([...values])})`];
  conditions.push(...tenantCondition(params, target));
  const text = `SELECT ${selectList(table, projection)} FROM ${tableRef(table, target)} t ${where(conditions)}`;
  return { operation, text, params: params.values, readOnly: true };
}

/**
 * The first `limit` children of every parent value in one statement: a window over the
 * children of the batch, ranked per parent in the relation's order.
 */
export function relationStatement(
  binding: RelationBinding,
  parentValues: readonly unknown[],
  limit: number,
  args: Readonly<Record<string, unknown>>,
  target: StatementTarget,
  projection?: Projection,
): Statement {
  const params = new Params();
  const child = binding.to;
  // The key last, as a tie-breaker, unless the order already names it.
  const terms = binding.orderBy.some((term) => term.column === child.key.column)
    ? binding.orderBy
    : [...binding.orderBy, { column: child.key.column, descending: false }];
  const order = terms
    .map((term) => `t.${q(term.column)}${term.descending ? ' DESC' : ''}`)
    .join(', ');
  const conditions = [`t.${q(binding.childColumn)} = ANY(${params.add([...parentValues])})`];
  conditions.push(...tenantCondition(params, target));
  conditions.push(...filterConditions(params, binding.filters, args));
  const rank = `row_number() OVER (PARTITION BY t.${q(binding.childColumn)} ORDER BY ${order})`;
  const text = `SELECT * FROM (
      SELECT ${selectList(child, projection)}, ${rank} AS atrium_rank
      FROM ${tableRef(child, target)} t ${where(conditions)}
    ) ranked WHERE atrium_rank <= ${params.add(limit)} ORDER BY atrium_rank`;
  return {
    operation: `${binding.parent}.${binding.field}`,
    text,
    params: params.values,
    readOnly: true,
  };
}

/** A keyset page by the key: `first + 1` rows after `after`, to learn whether more follow. */
export function pageStatement(
  binding: ConnectionBinding,
  first: number,
  after: unknown,
  args: Readonly<Record<string, unknown>>,
  target: StatementTarget,
  projection?: Projection,
): Statement {
  const params = new Params();
  const key = `t.${q(binding.table.key.column)}`;
  const conditions: string[] = [];
  if (after !== undefined) conditions.push(`${key} > ${params.add(after)}`);
  conditions.push(...filterConditions(params, binding.filters, args));
  conditions.push(...tenantCondition(params, target));
  const text = `SELECT ${selectList(binding.table, projection)} FROM ${tableRef(binding.table, target)} t
    ${where(conditions)} ORDER BY ${key} LIMIT ${params.add(first + 1)}`;
  return {
    operation: `${binding.parent}.${binding.field}`,
    text,
    params: params.values,
    readOnly: true,
  };
}

/**
 * One row from an input: the columns the input gives (null and omitted ones are left to the
 * table's defaults), and `tenant_id` wherever the table has it.
 */
export function insertStatement(
  binding: InsertBinding,
  input: Readonly<Record<string, unknown>>,
  target: StatementTarget,
  hasTenantColumn: TenantColumnOf = () => target.row,
  projection?: Projection,
): Statement {
  const params = new Params();
  const columns: string[] = [];
  const values: string[] = [];
  const given: ColumnBinding[] = binding.columns.filter(
    (c) => input[c.field] !== undefined && input[c.field] !== null,
  );
  for (const column of given) {
    columns.push(q(column.column));
    values.push(params.add(input[column.field]));
  }
  const tenantColumn = target.row || hasTenantColumn(binding.table.table);
  if (tenantColumn) {
    columns.push(q(TENANT_COLUMN));
    values.push(params.add(target.tenantId));
  }
  const into = `${tableRef(binding.table, target)} AS t`;
  const returning = selectList(binding.table, projection);
  const text =
    columns.length > 0
      ? `INSERT INTO ${into} (${columns.join(', ')}) VALUES (${values.join(', ')}) RETURNING ${returning}`
      : `INSERT INTO ${into} DEFAULT VALUES RETURNING ${returning}`;
  return {
    operation: `${binding.parent}.${binding.field}`,
    text,
    params: params.values,
    readOnly: false,
  };
}
