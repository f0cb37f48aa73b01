import type { DataSource, TenantDataRef } from '../../backends/data/types.js';

/** One column of a tenant's table, as PostgreSQL's catalog describes it. */
export interface CatalogColumn {
  name: string;
  /** `pg_type.typname`: int4, text, numeric, timestamptz, bpchar, or an enum type's name. */
  type: string;
  /** `pg_type.typtype`: `e` for an enum type. */
  typeKind: string;
  notNull: boolean;
  hasDefault: boolean;
  /** Character length limit of varchar(n)/char(n), else undefined. */
  maxLength: number | undefined;
  /** Values must be below this in magnitude: numeric(p, s) → 10^(p−s), int2 → 32768. */
  magnitudeBelow: number | undefined;
}

/** The magnitude bound of a numeric(p, s) (atttypmod = (p << 16 | s) + 4) or a smallint. */
function magnitudeBelow(type: string, typmod: number): number | undefined {
  if (type === 'int2') return 32_768;
  if (type !== 'numeric' || typmod < 4) return undefined;
  const precision = ((typmod - 4) >> 16) & 0xffff;
  const scale = (typmod - 4) & 0xffff;
  return 10 ** (precision - scale);
}

export interface CatalogTable {
  name: string;
  rowSecurity: boolean;
  forceRowSecurity: boolean;
  columns: Map<string, CatalogColumn>;
  /** Constraint name → its columns (for naming the field an insert broke). */
  constraints: Map<string, string[]>;
}

/** The tables of one tenant's schema. */
export interface TenantCatalog {
  schema: string;
  tables: Map<string, CatalogTable>;
}

interface CatalogRow {
  table_name: string;
  rls: boolean;
  force_rls: boolean;
  column_name: string | null;
  type_name: string | null;
  type_kind: string | null;
  not_null: boolean | null;
  has_default: boolean | null;
  typmod: number | null;
  constraints: { name: string; columns: string[] }[] | null;
}

/**
 * One statement reading every table, column and constraint of the tenant's schema from
 * pg_catalog (not information_schema: it hides tables the row role may not read, and has no
 * RLS flags). Runs through the tenant's own DataSource path, so it sees what requests see.
 */
const CATALOG_SQL = `
SELECT c.relname AS table_name, c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
  a.attname AS column_name, t.typname AS type_name, t.typtype AS type_kind,
  a.attnotnull AS not_null, (a.atthasdef OR a.attidentity <> '') AS has_default,
  a.atttypmod AS typmod,
  (SELECT json_agg(json_build_object('name', k.conname, 'columns',
      (SELECT json_agg(ka.attname) FROM pg_catalog.pg_attribute ka
       WHERE ka.attrelid = c.oid AND ka.attnum = ANY(k.conkey))))
   FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid) AS constraints
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname, a.attnum`;

export async function readCatalog(
  dataSource: DataSource,
  tenant: TenantDataRef,
): Promise<TenantCatalog> {
  const rows = await dataSource.query<CatalogRow>(tenant, (target) => ({
    operation: 'catalog',
    text: CATALOG_SQL,
    params: [target.schema],
    readOnly: true,
  }));
  const tables = new Map<string, CatalogTable>();
  for (const row of rows) {
    let table = tables.get(row.table_name);
    if (!table) {
      table = {
        name: row.table_name,
        rowSecurity: row.rls,
        forceRowSecurity: row.force_rls,
        columns: new Map(),
        constraints: new Map(
          (row.constraints ?? []).map((k) => [k.name, k.columns] as [string, string[]]),
        ),
      };
      tables.set(row.table_name, table);
    }
    if (row.column_name === null) continue;
    const type = row.type_name ?? '';
    const typmod = row.typmod ?? -1;
    table.columns.set(row.column_name, {
      name: row.column_name,
      type,
      typeKind: row.type_kind ?? 'b',
      notNull: row.not_null === true,
      hasDefault: row.has_default === true,
      // varchar(n) and char(n) store n + 4 in atttypmod.
      maxLength: (type === 'varchar' || type === 'bpchar') && typmod > 4 ? typmod - 4 : undefined,
      magnitudeBelow: magnitudeBelow(type, typmod),
    });
  }
  return { schema: dataSource.schemaOf(tenant), tables };
}
