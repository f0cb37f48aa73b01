import type { DataSource, TenantDataRef } from '../../backends/data/types.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { LoaderRegistry } from '../../loaders/registry.js';
import {
  bindingName,
  type ConnectionBinding,
  type InsertBinding,
  type LookupBinding,
  type RelationBinding,
  type SchemaBindings,
  type TableBinding,
} from '../bindings.js';
import type { CatalogColumn, TenantCatalog } from './catalog.js';
import { covers, fullProjection, type Projection, withColumn } from './projection.js';
import { createSharedLookups, type SharedLookups } from './shared-lookups.js';
import {
  byColumnStatement,
  insertStatement,
  pageStatement,
  relationStatement,
  TENANT_COLUMN,
} from './statements.js';

/** The raw row behind a record, by column name (relations join on columns no field shows). */
export const ROW: unique symbol = Symbol('atrium.row');

/** The columns a record was read with (a record lacks the column fields of the others). */
export const PROJECTION: unique symbol = Symbol('atrium.projection');

/**
 * A table row as resolvers see it: its column fields by GraphQL field name (those its
 * projection selected), and the raw row.
 */
export type DataRecord = Record<string, unknown> & {
  [ROW]: Readonly<Record<string, unknown>>;
  [PROJECTION]: Projection;
};

export interface Page {
  rows: DataRecord[];
  hasNextPage: boolean;
  table: TableBinding;
}

export interface TenantDataOptions {
  tenant: TenantDataRef;
  dataSource: DataSource;
  loaders: LoaderRegistry;
  bindings: SchemaBindings;
  /**
   * Lookups by column shared with the other requests (the gateway's one per data source, see
   * server/context.ts); default: this request's own, which joins nothing.
   */
  lookups?: SharedLookups | undefined;
  /** The tenant's catalog (cached per tenant), for key types, tenant_id and constraint names. */
  catalog: () => Promise<TenantCatalog | undefined>;
  /** The plan's largest `first`. */
  maxPageSize: number;
}

/**
 * The SQL side of one request: every read batched per binding, argument shape and projection.
 * A read selects the columns of its `projection` (default: every column of the table), so the
 * records it answers have those column fields only.
 */
export interface TenantData {
  lookup(
    binding: LookupBinding,
    value: unknown,
    projection?: Projection,
  ): Promise<DataRecord | null>;
  page(
    binding: ConnectionBinding,
    args: Readonly<Record<string, unknown>>,
    projection?: Projection,
  ): Promise<Page>;
  related(
    binding: RelationBinding,
    parent: DataRecord,
    args: Readonly<Record<string, unknown>>,
    projection?: Projection,
  ): Promise<DataRecord[] | DataRecord | null>;
  insert(
    binding: InsertBinding,
    input: Readonly<Record<string, unknown>>,
    projection?: Projection,
  ): Promise<DataRecord>;
}

/** Keys longer than this are not keys of ours; they never reach SQL. */
export const MAX_KEY_LENGTH = 128;
const INTEGER_TYPES = new Set(['int2', 'int4', 'int8']);
const INTEGER_TEXT = /^-?[0-9]{1,18}$/;
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Why `value` cannot be a value of `column`, or undefined when it can. */
function invalidKey(value: unknown, column: CatalogColumn | undefined): string | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) || column === undefined ? undefined : 'not an integer';
  }
  if (typeof value !== 'string') return 'not a key';
  if (value.length === 0 || value.length > MAX_KEY_LENGTH) {
    return `must be 1-${MAX_KEY_LENGTH} characters`;
  }
  if (column && INTEGER_TYPES.has(column.type) && !INTEGER_TEXT.test(value)) {
    return 'must be an integer';
  }
  if (column?.type === 'uuid' && !UUID_TEXT.test(value)) return 'must be a UUID';
  return undefined;
}

/** Keys compare as text, whatever the column type: `1` (an int FK) and `"1"` (an ID) match. */
const keyOf = (value: unknown): string => String(value);

export function pageSize(value: unknown, fallback: number, max: number, name = 'first'): number {
  const n = value ?? fallback;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
    throw new GatewayError(
      'BAD_USER_INPUT',
      `"${name}" must be between 1 and ${max}; got ${String(n)}.`,
      { extensions: { argument: name } },
    );
  }
  return n;
}

const CURSOR_PREFIX = 'c1:';

/** Opaque cursors: clients must not build them, so their format may change. */
export function encodeCursor(key: unknown): string {
  return Buffer.from(CURSOR_PREFIX + String(key), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: unknown, name = 'after'): string | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const text =
    typeof cursor === 'string' && cursor.length <= 256
      ? Buffer.from(cursor, 'base64url').toString('utf8')
      : '';
  if (!text.startsWith(CURSOR_PREFIX) || text.length === CURSOR_PREFIX.length) {
    throw new GatewayError('BAD_USER_INPUT', `Invalid cursor "${name}".`, {
      extensions: { argument: name },
    });
  }
  return text.slice(CURSOR_PREFIX.length);
}

/**
 * The record of a row: the row itself where the projection allows (its renamed fields added
 * beside its columns, which then read the same under either name), else a copy by field name.
 * A row several requests share (one statement joined) becomes the same record for each: the
 * fields added are the same values, so nothing one request sees depends on another.
 */
function toRecord(projection: Projection, row: Readonly<Record<string, unknown>>): DataRecord {
  if (projection.inPlace) {
    const record = row as DataRecord;
    for (const { field, column } of projection.renamed) record[field] = row[column];
    record[ROW] = row;
    record[PROJECTION] = projection;
    return record;
  }
  const record = { [ROW]: row, [PROJECTION]: projection } as DataRecord;
  for (const { field, column } of projection.fields) record[field] = row[column];
  return record;
}

/** The loader or shared statement name of a read: its projection's columns are part of it. */
function projected(name: string, projection: Projection): string {
  return projection.full ? name : `${name}[${projection.key}]`;
}

/** The error an insert's broken constraint means for the client, naming the input field. */
function insertError(
  error: GatewayError,
  binding: InsertBinding,
  bindings: SchemaBindings,
  catalog: TenantCatalog | undefined,
): GatewayError {
  if (error.code !== 'BAD_USER_INPUT') return error;
  const cause = error.originalError as
    | { code?: string; column?: string; constraint?: string; detail?: string; table?: string }
    | undefined;
  const code = cause?.code ?? '';
  const table = catalog?.tables.get(binding.table.table);
  let columns: string[] = [];
  if (cause?.column) columns = [cause.column];
  else if (cause?.constraint && table?.constraints.has(cause.constraint)) {
    columns = table.constraints.get(cause.constraint) ?? [];
  } else if (cause?.detail) {
    const match = /^Key \(([^)]*)\)/.exec(cause.detail);
    if (match?.[1]) columns = match[1].split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
  }
  if (columns.length === 0 && cause?.constraint) {
    // Default constraint names (`orders_amount_check`) name their column.
    columns = binding.columns
      .filter((c) => cause.constraint?.includes(`_${c.column}_`))
      .map((c) => c.column);
  }
  const fields = columns
    .filter((c) => c !== TENANT_COLUMN)
    .flatMap((c) => binding.columns.filter((b) => b.column === c).map((b) => b.field));
  const field = fields[0];
  if (field === undefined) {
    return new GatewayError('BAD_USER_INPUT', 'The input breaks a rule of the data', {
      cause: error,
    });
  }
  let message: string;
  if (code === '23503') {
    const referenced = /table "([^"]+)"/.exec(cause?.detail ?? '')?.[1];
    const type = [...bindings.tables.values()].find((t) => t.table === referenced)?.type;
    message = `${field} does not name an existing ${type ?? 'row'}`;
  } else if (code === '23505') message = `${field} is already taken`;
  else if (code === '23502') message = `${field} is required`;
  else message = `${field} is out of range`;
  return new GatewayError('BAD_USER_INPUT', message, {
    cause: error,
    extensions: { field, argument: binding.argument },
  });
}

export function createTenantData(options: TenantDataOptions): TenantData {
  const { tenant, dataSource, loaders, bindings, maxPageSize } = options;
  const lookups = options.lookups ?? createSharedLookups(dataSource);
  let catalogPromise: Promise<TenantCatalog | undefined> | undefined;
  const catalog = () => (catalogPromise ??= options.catalog().catch(() => undefined));

  async function columnInfo(table: TableBinding, column: string) {
    return (await catalog())?.tables.get(table.table)?.columns.get(column);
  }

  /**
   * Rows this request has read, by table and key: later lookups of them that want no column
   * the row was not read with need no statement.
   */
  const seen = new Map<TableBinding, Map<string, DataRecord>>();

  /** Remembers `record` unless a row read with more columns is already known. */
  function remember(known: Map<string, DataRecord>, key: string, record: DataRecord) {
    const before = known.get(key);
    if (before === undefined || covers(record[PROJECTION], before[PROJECTION])) {
      known.set(key, record);
    }
  }

  function seenIn(table: TableBinding): Map<string, DataRecord> {
    let known = seen.get(table);
    if (!known) {
      known = new Map();
      seen.set(table, known);
    }
    return known;
  }

  function rowsOf(
    projection: Projection,
    rows: readonly Readonly<Record<string, unknown>>[],
  ): DataRecord[] {
    const { table } = projection;
    const known = seenIn(table);
    return rows.map((row) => {
      const record = toRecord(projection, row);
      remember(known, keyOf(row[table.key.column]), record);
      return record;
    });
  }

  /** The loader of `table`'s rows by one (unique) column, read with `wanted`'s columns. */
  function byColumn(table: TableBinding, column: string, wanted: Projection) {
    const operation = `${table.type}.by(${column})`;
    const projection = withColumn(wanted, column);
    const name = projected(operation, projection);
    return loaders.get<unknown, DataRecord | null, string>(
      name,
      async (values) => {
        const info = await columnInfo(table, column);
        const errors = values.map((v) => invalidKey(v, info));
        const byKey = column === table.key.column ? seen.get(table) : undefined;
        const knownOf = (value: unknown) => {
          const record = byKey?.get(keyOf(value));
          return record && covers(record[PROJECTION], projection) ? record : undefined;
        };
        const valid = [
          ...new Set(values.filter((v, i) => errors[i] === undefined && !knownOf(v)).map(keyOf)),
        ];
        const found = new Map<string, DataRecord>();
        if (valid.length > 0) {
          try {
            const rows = await lookups.read(tenant, {
              name,
              shape: table,
              keys: valid,
              keyColumn: column,
              build: (keys, target) =>
                byColumnStatement(operation, table, column, keys, target, projection),
            });
            // The statement may have carried other requests' keys: only this batch's are read.
            for (const key of valid) {
              const row = rows.get(key)?.[0];
              if (row) found.set(key, toRecord(projection, row));
            }
          } catch (error) {
            return values.map(() => (error instanceof Error ? error : new Error(String(error))));
          }
        }
        return values.map((value, i) => {
          const why = errors[i];
          if (why !== undefined) {
            return new GatewayError('BAD_USER_INPUT', `Invalid key: ${why}.`);
          }
          return knownOf(value) ?? found.get(keyOf(value)) ?? null;
        });
      },
      { cacheKeyFn: keyOf },
    );
  }

  function limitOf(first: { defaultValue: number; max: number | undefined }, value: unknown) {
    return pageSize(value, first.defaultValue, Math.min(first.max ?? maxPageSize, maxPageSize));
  }

  const NO_FILTERS: Record<string, unknown> = {};

  function filterArgs(
    binding: { filters: readonly { argument: string }[] },
    args: Readonly<Record<string, unknown>>,
  ) {
    if (binding.filters.length === 0) return NO_FILTERS;
    return Object.fromEntries(binding.filters.map((f) => [f.argument, args[f.argument]]));
  }

  function children(
    binding: RelationBinding,
    limit: number,
    args: Record<string, unknown>,
    wanted: Projection,
  ) {
    const projection = withColumn(wanted, binding.childColumn);
    // Asked once per parent: the name of the usual unfiltered shape is cheap to make.
    const name = projected(
      args === NO_FILTERS
        ? `${bindingName(binding)}(${limit})`
        : `${bindingName(binding)}(${JSON.stringify({ first: limit, ...args })})`,
      projection,
    );
    return loaders.get<unknown, DataRecord[], string>(
      name,
      async (parents) => {
        const values = [...new Set(parents.map(keyOf))];
        try {
          const rows = await lookups.read(tenant, {
            name,
            shape: binding,
            keys: values,
            keyColumn: binding.childColumn,
            build: (keys, target) =>
              relationStatement(binding, keys, limit, args, target, projection),
          });
          // Only this batch's parents are read (the statement may have carried others').
          const grouped = new Map<string, DataRecord[]>();
          for (const value of values) grouped.set(value, rowsOf(projection, rows.get(value) ?? []));
          return parents.map((p) => grouped.get(keyOf(p)) ?? []);
        } catch (error) {
          return parents.map(() => (error instanceof Error ? error : new Error(String(error))));
        }
      },
      { cacheKeyFn: keyOf },
    );
  }

  return {
    async lookup(binding, value, projection = fullProjection(binding.table)) {
      const record = await byColumn(binding.table, binding.column.column, projection).load(value);
      // Found by another unique column: later lookups by key need no statement either.
      if (record) {
        remember(seenIn(binding.table), keyOf(record[ROW][binding.table.key.column]), record);
      }
      return record;
    },

    async page(binding, args, projection = fullProjection(binding.table)) {
      const first = limitOf(binding.first, args[binding.first.argument]);
      const after = binding.after === undefined ? undefined : decodeCursor(args[binding.after]);
      if (after !== undefined) {
        const why = invalidKey(after, await columnInfo(binding.table, binding.table.key.column));
        if (why !== undefined) {
          throw new GatewayError('BAD_USER_INPUT', 'Invalid cursor "after".', {
            extensions: { argument: 'after' },
          });
        }
      }
      const filters = filterArgs(binding, args);
      // The same page asked by concurrent requests of the tenant is one statement (see same()).
      const name = projected(
        `${bindingName(binding)}(${JSON.stringify([first, after ?? null, filters])})`,
        projection,
      );
      const rows = await lookups.same(tenant, {
        name,
        shape: binding,
        build: (target) => pageStatement(binding, first, after, filters, target, projection),
      });
      return {
        rows: rowsOf(projection, rows.slice(0, first)),
        hasNextPage: rows.length > first,
        table: binding.table,
      };
    },

    async related(binding, parent, args, projection = fullProjection(binding.to)) {
      const value = parent[ROW][binding.parentColumn];
      if (!binding.many) {
        if (value === null || value === undefined) return null;
        return byColumn(binding.to, binding.childColumn, projection).load(value);
      }
      if (value === null || value === undefined) return [];
      const limit = limitOf(binding.first ?? { defaultValue: 10, max: undefined }, args.first);
      return children(binding, limit, filterArgs(binding, args), projection).load(value);
    },

    async insert(binding, input, projection = fullProjection(binding.table)) {
      const known = await catalog();
      const table = known?.tables.get(binding.table.table);
      for (const column of binding.columns) {
        const value = input[column.field];
        const info = table?.columns.get(column.column);
        if (
          typeof value === 'number' &&
          info?.magnitudeBelow !== undefined &&
          // Checked before rounding: numeric(12,2) holds values below 10^10.
          Math.abs(value) >= info.magnitudeBelow
        ) {
          throw new GatewayError('BAD_USER_INPUT', `${column.field} is out of range`, {
            extensions: { field: column.field, argument: binding.argument },
          });
        }
        if (
          typeof value === 'string' &&
          info?.maxLength !== undefined &&
          value.length > info.maxLength
        ) {
          throw new GatewayError(
            'BAD_USER_INPUT',
            `${column.field} must be at most ${info.maxLength} characters`,
            { extensions: { field: column.field, argument: binding.argument } },
          );
        }
      }
      const hasTenantColumn = (name: string) =>
        known?.tables.get(name)?.columns.has(TENANT_COLUMN) ?? tenant.data.strategy === 'row';
      let rows: Record<string, unknown>[];
      try {
        rows = await dataSource.query(tenant, (target) =>
          insertStatement(binding, input, target, hasTenantColumn, projection),
        );
      } catch (error) {
        throw isGatewayError(error) ? insertError(error, binding, bindings, known) : error;
      }
      const row = rows[0];
      if (row === undefined) {
        throw new GatewayError('INTERNAL_SERVER_ERROR', 'The data backend failed', {
          cause: new Error('INSERT … RETURNING returned no row'),
        });
      }
      return rowsOf(projection, [row])[0] as DataRecord;
    },
  };
}
