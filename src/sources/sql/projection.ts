import type { TableBinding } from '../bindings.js';

/**
 * The columns one read selects from a table: those the operation asks of its rows (src/graphql/
 * projection.ts works them out from the selection), never fewer than the key. Reads of equal
 * `key` select the same columns, so they may be the same statement.
 */
export interface Projection {
  readonly table: TableBinding;
  /** `*` for every column; else the column names, sorted, joined by commas. */
  readonly key: string;
  readonly full: boolean;
  /** Column names (the key's included). */
  readonly columns: ReadonlySet<string>;
  /** The column fields a record of this projection has, by GraphQL field name. */
  readonly fields: readonly { readonly field: string; readonly column: string }[];
  /** The fields whose name is not their column's. */
  readonly renamed: readonly { readonly field: string; readonly column: string }[];
  /**
   * Whether a row read with this projection can become its record in place (its renamed
   * fields added beside the columns): no field is named as another column of the row, so
   * adding one never hides a column.
   */
  readonly inPlace: boolean;
}

/** A column every relation's rows carry besides their columns (statements.ts). */
const RANK_COLUMN = 'atrium_rank';

const full = new WeakMap<TableBinding, Projection>();
const known = new WeakMap<TableBinding, ReadonlySet<string>>();
const extended = new WeakMap<Projection, Map<string, Projection>>();

/** Every column a row of `table` may be read with: its column fields', then join columns. */
function columnsOf(table: TableBinding): ReadonlySet<string> {
  let names = known.get(table);
  if (!names) {
    names = new Set([...table.columns.map((c) => c.column), ...table.joinColumns]);
    known.set(table, names);
  }
  return names;
}

function shapeOf(table: TableBinding, columns: ReadonlySet<string>) {
  const fields = table.columns
    .filter((c) => columns.has(c.column))
    .map(({ field, column }) => ({ field, column }));
  const renamed = fields.filter((f) => f.field !== f.column);
  const inPlace = renamed.every((f) => !columns.has(f.field) && f.field !== RANK_COLUMN);
  return { fields, renamed, inPlace };
}

/** Every column of the table: what a read selects when nothing narrower is known. */
export function fullProjection(table: TableBinding): Projection {
  let projection = full.get(table);
  if (!projection) {
    projection = {
      table,
      key: '*',
      full: true,
      columns: columnsOf(table),
      ...shapeOf(table, columnsOf(table)),
    };
    full.set(table, projection);
  }
  return projection;
}

/** The key and `wanted` (names that are no column of the table are left out). */
export function projectionOf(table: TableBinding, wanted: Iterable<string>): Projection {
  const all = columnsOf(table);
  const names = new Set([table.key.column]);
  for (const name of wanted) if (all.has(name)) names.add(name);
  if (names.size === all.size) return fullProjection(table);
  const sorted = [...names].sort();
  const columns = new Set(sorted);
  return {
    table,
    key: sorted.join(','),
    full: false,
    columns,
    ...shapeOf(table, columns),
  };
}

/** `projection` and `column` (the column a read groups its rows by). */
export function withColumn(projection: Projection, column: string): Projection {
  if (projection.columns.has(column)) return projection;
  let more = extended.get(projection);
  if (!more) {
    more = new Map();
    extended.set(projection, more);
  }
  let next = more.get(column);
  if (!next) {
    next = projectionOf(projection.table, [...projection.columns, column]);
    more.set(column, next);
  }
  return next;
}

/** Whether a row read with `have` holds every column `want` selects. */
export function covers(have: Projection, want: Projection): boolean {
  if (have === want || have.full) return true;
  if (want.full || want.columns.size > have.columns.size) return false;
  for (const column of want.columns) if (!have.columns.has(column)) return false;
  return true;
}
