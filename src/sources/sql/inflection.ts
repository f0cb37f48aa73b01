/** How GraphQL names become SQL names when the SDL does not say (`@column`, `@table(name:)`). */

/** `createdAt` → `created_at`, `HTTPStatus` → `http_status`, `Book` → `book`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** A type's default table: `Book` → `books`, `InvoiceLine` → `invoice_lines`. */
export function defaultTableName(typeName: string): string {
  return `${snakeCase(typeName)}s`;
}

/** What the engine accepts as a table or column name: PostgreSQL's unquoted identifiers. */
export const SQL_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
