import { getDirective } from '@graphql-tools/utils';
import {
  getNamedType,
  getNullableType,
  GraphQLEnumType,
  type GraphQLField,
  type GraphQLArgument,
  GraphQLInputObjectType,
  type GraphQLList,
  GraphQLObjectType,
  GraphQLScalarType,
  type GraphQLSchema,
  type GraphQLType,
  isListType,
  isNonNullType,
} from 'graphql';
import type {
  AnswerShape,
  ShapeField,
  TemplatePart,
  ColumnBinding,
  FieldBinding,
  FilterBinding,
  OrderTerm,
  PageSize,
  RelationBinding,
  ScalarKind,
  SchemaBindings,
  TableBinding,
} from '../sources/bindings.js';
import { defaultTableName, snakeCase, SQL_IDENTIFIER } from '../sources/sql/inflection.js';

/** A source directive that cannot be honoured; the message says where: `[at Type.field @dir]`. */
export class SchemaBindingError extends Error {
  override name = 'SchemaBindingError';
}

const BUILT_IN: Readonly<Record<string, ScalarKind>> = {
  ID: 'ID',
  String: 'String',
  Int: 'Int',
  Float: 'Float',
  Boolean: 'Boolean',
  DateTime: 'DateTime',
};

/** The source directives (src/graphql/engine/sources.graphql); they never reach clients. */
export const SOURCE_DIRECTIVES: ReadonlySet<string> = new Set([
  'table',
  'column',
  'lookup',
  'connection',
  'filter',
  'relation',
  'insert',
  'infer',
  'http',
  'requiresScopes',
]);

/** Directives that make a field of a table type something other than a column. */
const FIELD_SOURCES = ['relation', 'infer', 'http'] as const;

export interface ReadBindingsOptions {
  /** `Type.field` of every field the operator's resolver module answers: not a column. */
  resolved?: ReadonlySet<string> | undefined;
}

function fail(where: string, message: string): never {
  throw new SchemaBindingError(`[at ${where}] ${message}`);
}

function directive(
  schema: GraphQLSchema,
  node: Parameters<typeof getDirective>[1],
  name: string,
): Record<string, unknown> | undefined {
  return getDirective(schema, node, name)?.[0];
}

function identifier(where: string, what: string, value: unknown): string {
  if (typeof value !== 'string' || !SQL_IDENTIFIER.test(value)) {
    fail(where, `${what} ${JSON.stringify(value)} is not a lowercase SQL identifier`);
  }
  return value;
}

/** The storage kind of a scalar or enum type, or undefined for anything else. */
function kindOf(type: GraphQLType): ScalarKind | undefined {
  const named = getNamedType(type);
  if (named instanceof GraphQLEnumType) return 'Enum';
  if (named instanceof GraphQLScalarType) return BUILT_IN[named.name];
  return undefined;
}

function columnOf(where: string, field: string, type: GraphQLType, column: string): ColumnBinding {
  if (isListType(getNullableType(type))) fail(where, 'a column cannot be a list');
  const kind = kindOf(type);
  if (kind === undefined) {
    fail(
      where,
      `a column must be ID, String, Int, Float, Boolean, DateTime or an enum; ${String(type)} is none`,
    );
  }
  const named = getNamedType(type);
  return {
    field,
    column: identifier(where, 'column', column),
    kind,
    typeName: named.name,
    nonNull: isNonNullType(type),
    enumValues:
      named instanceof GraphQLEnumType
        ? named.getValues().map((v) => v.value as string)
        : undefined,
  };
}

interface MutableTable extends TableBinding {
  joinColumns: string[];
}

function readTable(schema: GraphQLSchema, type: GraphQLObjectType, resolved: ReadonlySet<string>) {
  const args = directive(schema, type, 'table');
  if (!args) return undefined;
  const where = `${type.name} @table`;
  const table = identifier(where, 'table', args.name ?? defaultTableName(type.name));
  const keyField = typeof args.key === 'string' ? args.key : 'id';
  const columns: ColumnBinding[] = [];
  for (const field of Object.values(type.getFields())) {
    const at = `${type.name}.${field.name}`;
    if (FIELD_SOURCES.some((name) => directive(schema, field, name))) continue;
    if (resolved.has(at)) continue;
    if (kindOf(field.type) === undefined || isListType(getNullableType(field.type))) {
      fail(
        at,
        `${String(field.type)} is not a column type; bind the field with @relation or @infer, or answer it from schema.resolvers`,
      );
    }
    if (field.args.length > 0) fail(at, 'a column field takes no arguments');
    const name = directive(schema, field, 'column')?.name ?? snakeCase(field.name);
    columns.push(columnOf(`${at} @column`, field.name, field.type, name as string));
  }
  const key = columns.find((c) => c.field === keyField);
  if (!key) fail(where, `key ${JSON.stringify(keyField)} is not a column field of ${type.name}`);
  const binding: MutableTable = { type: type.name, table, key, columns, joinColumns: [] };
  return binding;
}

function intDefault(where: string, arg: GraphQLArgument): number {
  if (getNamedType(arg.type).name !== 'Int' || isListType(getNullableType(arg.type))) {
    fail(where, `argument ${arg.name} must be an Int`);
  }
  const value = arg.defaultValue;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    fail(where, `argument ${arg.name} needs a positive default (e.g. ${arg.name}: Int = 20)`);
  }
  return value;
}

function maxOf(where: string, args: Record<string, unknown>): number | undefined {
  const max = args.max;
  if (max === undefined || max === null) return undefined;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) {
    fail(where, 'max must be a positive Int');
  }
  return max;
}

function filterOf(
  schema: GraphQLSchema,
  where: string,
  table: TableBinding,
  arg: GraphQLArgument,
): FilterBinding {
  const args = directive(schema, arg, 'filter');
  if (!args) {
    fail(where, `argument ${arg.name} has no source: mark it @filter or remove it`);
  }
  const column = identifier(where, 'column', args.column ?? snakeCase(arg.name));
  const known = table.columns.find((c) => c.column === column);
  const list = isListType(getNullableType(arg.type));
  if (
    list &&
    isListType(getNullableType((getNullableType(arg.type) as GraphQLList<GraphQLType>).ofType))
  ) {
    fail(where, `argument ${arg.name}: lists of lists cannot filter`);
  }
  const element = list ? (getNullableType(arg.type) as GraphQLList<GraphQLType>).ofType : arg.type;
  const binding = known ?? columnOf(where, arg.name, element, column);
  if (known && getNamedType(element).name !== known.typeName) {
    fail(
      where,
      `argument ${arg.name} is ${String(element)} but column ${column} is ${known.typeName}`,
    );
  }
  return { argument: arg.name, column: binding, list };
}

/** `created_at DESC, id` → terms; names must be identifiers. */
function parseOrderBy(where: string, text: string): OrderTerm[] {
  return text.split(',').map((part) => {
    const [column, direction, ...rest] = part.trim().split(/\s+/);
    const dir = (direction ?? 'ASC').toUpperCase();
    if (rest.length > 0 || (dir !== 'ASC' && dir !== 'DESC')) {
      fail(where, `orderBy ${JSON.stringify(text)}: each term is a column and ASC or DESC`);
    }
    return { column: identifier(where, 'orderBy column', column), descending: dir === 'DESC' };
  });
}

function tableOfType(
  tables: Map<string, MutableTable>,
  where: string,
  type: GraphQLType,
): MutableTable {
  const name = getNamedType(type).name;
  const table = tables.get(name);
  if (!table) fail(where, `${name} is not a @table type`);
  return table;
}

function noArguments(where: string, field: GraphQLField<unknown, unknown>): void {
  if (field.args.length > 0) fail(where, 'this field takes no arguments');
}

function pageSizeOf(where: string, field: GraphQLField<unknown, unknown>, max: number | undefined) {
  const first = field.args.find((a) => a.name === 'first');
  if (!first) fail(where, 'a list needs a `first: Int = n` argument (its page size)');
  const page: PageSize = { argument: 'first', defaultValue: intDefault(where, first), max };
  return page;
}

const PLACEHOLDER = /\{(parent|args)\.([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `/authors/{parent.id}/books` → parts; every placeholder must name something real. */
function parseTemplate(
  where: string,
  text: string,
  names: { parent: (name: string) => boolean; args: (name: string) => boolean },
): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    const [whole, from, name] = match as unknown as [string, 'parent' | 'args', string];
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    if (!names[from](name))
      fail(where, `${whole} names no ${from === 'args' ? 'argument' : 'parent field'}`);
    parts.push({ from, name });
    last = match.index + whole.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  if (/[{}]/.test(parts.map((p) => ('text' in p ? p.text : '')).join(''))) {
    fail(where, `${JSON.stringify(text)}: placeholders are {parent.field} or {args.name}`);
  }
  return parts;
}

/** The shape of a GraphQL output type, for checking a service's answer. */
function shapeOf(type: GraphQLType, seen: ReadonlySet<string>): AnswerShape {
  const named = getNamedType(type);
  if (named instanceof GraphQLEnumType) {
    return { kind: 'scalar', scalar: 'Enum', enumValues: named.getValues().map((v) => v.name) };
  }
  if (named instanceof GraphQLScalarType) {
    return { kind: 'scalar', scalar: BUILT_IN[named.name] ?? 'String' };
  }
  if (!(named instanceof GraphQLObjectType) || seen.has(named.name)) return { kind: 'any-object' };
  const next = new Set([...seen, named.name]);
  return {
    kind: 'object',
    fields: Object.values(named.getFields()).map((f) => shapeField(f.name, f.type, next)),
  };
}

function shapeField(name: string, type: GraphQLType, seen: ReadonlySet<string>): ShapeField {
  const nullable = getNullableType(type);
  const list = isListType(nullable);
  const item = list ? (nullable as GraphQLList<GraphQLType>).ofType : type;
  return {
    name,
    nonNull: isNonNullType(type),
    list,
    itemNonNull: list && isNonNullType(item),
    shape: shapeOf(item, seen),
  };
}

/**
 * Reads the source directives of a built schema into bindings, checking everything the SDL
 * alone can tell (names are identifiers, types fit, arguments have a source). Throws a
 * SchemaBindingError naming the first problem's place.
 */
export function readBindings(
  schema: GraphQLSchema,
  options: ReadBindingsOptions = {},
): SchemaBindings {
  const resolved = options.resolved ?? new Set<string>();
  const types = Object.values(schema.getTypeMap()).filter(
    (t): t is GraphQLObjectType => t instanceof GraphQLObjectType && !t.name.startsWith('__'),
  );
  const tables = new Map<string, MutableTable>();
  for (const type of types) {
    const table = readTable(schema, type, resolved);
    if (table) tables.set(type.name, table);
  }
  const fields: FieldBinding[] = [];
  const scopes = new Map<string, readonly string[]>();
  const rootNames = new Set(
    [schema.getQueryType(), schema.getMutationType()].flatMap((t) => (t ? [t.name] : [])),
  );
  const joinColumn = (table: MutableTable, column: string) => {
    if (!table.columns.some((c) => c.column === column) && !table.joinColumns.includes(column)) {
      table.joinColumns.push(column);
    }
  };

  for (const type of types) {
    for (const field of Object.values(type.getFields())) {
      const at = `${type.name}.${field.name}`;
      const required = directive(schema, field, 'requiresScopes');
      if (required) {
        const list = required.scopes as unknown;
        if (!Array.isArray(list) || list.length === 0)
          fail(`${at} @requiresScopes`, 'needs scopes');
        scopes.set(at, list as string[]);
      }
      const lookup = directive(schema, field, 'lookup');
      const connection = directive(schema, field, 'connection');
      const relation = directive(schema, field, 'relation');
      const insert = directive(schema, field, 'insert');
      const infer = directive(schema, field, 'infer');
      const http = directive(schema, field, 'http');
      const present = [lookup, connection, relation, insert, infer, http].filter(Boolean).length;
      if (present > 1) fail(at, 'a field takes one source directive');
      const isRoot = rootNames.has(type.name);

      if (lookup) {
        const where = `${at} @lookup`;
        if (type !== schema.getQueryType()) fail(where, '@lookup belongs on Query fields');
        if (isListType(getNullableType(field.type))) fail(where, 'a lookup answers one row');
        const table = tableOfType(tables, where, field.type);
        const [arg, ...extra] = field.args;
        if (!arg || extra.length > 0) fail(where, 'a lookup takes exactly one argument');
        const by = typeof lookup.by === 'string' ? lookup.by : table.key.field;
        const column = table.columns.find((c) => c.field === by);
        if (!column) fail(where, `by ${JSON.stringify(by)} is not a column field of ${table.type}`);
        if (!isNonNullType(arg.type) || kindOf(arg.type) === undefined) {
          fail(where, `argument ${arg.name} must be a non-null scalar`);
        }
        fields.push({
          kind: 'lookup',
          parent: type.name,
          field: field.name,
          table,
          argument: arg.name,
          column,
        });
      } else if (connection) {
        const where = `${at} @connection`;
        if (type !== schema.getQueryType()) fail(where, '@connection belongs on Query fields');
        const connectionType = getNamedType(field.type);
        const edges =
          connectionType instanceof GraphQLObjectType
            ? connectionType.getFields().edges
            : undefined;
        const pageInfo =
          connectionType instanceof GraphQLObjectType
            ? connectionType.getFields().pageInfo
            : undefined;
        const edgeType = edges ? getNamedType(edges.type) : undefined;
        const node = edgeType instanceof GraphQLObjectType ? edgeType.getFields().node : undefined;
        const cursor =
          edgeType instanceof GraphQLObjectType ? edgeType.getFields().cursor : undefined;
        if (
          !edges ||
          !isListType(getNullableType(edges.type)) ||
          !node ||
          !cursor ||
          getNamedType(cursor.type).name !== 'String' ||
          !pageInfo ||
          getNamedType(pageInfo.type).name !== 'PageInfo'
        ) {
          fail(
            where,
            `${connectionType.name} must have edges: [Edge!]! (with cursor: String! and node) and pageInfo: PageInfo!`,
          );
        }
        const table = tableOfType(tables, where, node.type);
        const filters: FilterBinding[] = [];
        let after: string | undefined;
        for (const arg of field.args) {
          if (arg.name === 'first') continue;
          if (arg.name === 'after') {
            if (getNamedType(arg.type).name !== 'String') fail(where, 'after must be a String');
            after = 'after';
            continue;
          }
          filters.push(filterOf(schema, where, table, arg));
        }
        fields.push({
          kind: 'connection',
          parent: type.name,
          field: field.name,
          table,
          connectionType: connectionType.name,
          edgeType: (edgeType as GraphQLObjectType).name,
          first: pageSizeOf(where, field, maxOf(where, connection)),
          after,
          filters,
        });
      } else if (relation) {
        const where = `${at} @relation`;
        const from = tables.get(type.name);
        if (!from) fail(where, `${type.name} is not a @table type`);
        const to = tableOfType(tables, where, field.type);
        const many = isListType(getNullableType(field.type));
        const foreignKey = identifier(where, 'foreignKey', relation.foreignKey);
        const references =
          relation.references === undefined || relation.references === null
            ? undefined
            : identifier(where, 'references', relation.references);
        const binding: RelationBinding = many
          ? {
              kind: 'relation',
              parent: type.name,
              field: field.name,
              many,
              from,
              to,
              parentColumn: references ?? from.key.column,
              childColumn: foreignKey,
              orderBy:
                typeof relation.orderBy === 'string'
                  ? parseOrderBy(where, relation.orderBy)
                  : [{ column: to.key.column, descending: false }],
              first: pageSizeOf(where, field, maxOf(where, relation)),
              filters: field.args
                .filter((a) => a.name !== 'first')
                .map((a) => filterOf(schema, where, to, a)),
            }
          : {
              kind: 'relation',
              parent: type.name,
              field: field.name,
              many,
              from,
              to,
              parentColumn: foreignKey,
              childColumn: references ?? to.key.column,
              orderBy: [],
              first: undefined,
              filters: [],
            };
        if (!many) noArguments(where, field);
        if (many && isNonNullType(getNullableType(field.type)) === false) {
          const element = (getNullableType(field.type) as GraphQLList<GraphQLType>).ofType;
          if (!isNonNullType(element))
            fail(where, `a one-to-many list is [${getNamedType(field.type).name}!]`);
        }
        joinColumn(from, binding.parentColumn);
        joinColumn(to, binding.childColumn);
        for (const term of binding.orderBy) joinColumn(to, term.column);
        fields.push(binding);
      } else if (insert) {
        const where = `${at} @insert`;
        if (type !== schema.getMutationType()) fail(where, '@insert belongs on Mutation fields');
        const table = tableOfType(tables, where, field.type);
        const [arg, ...extra] = field.args;
        const input = arg ? getNullableType(arg.type) : undefined;
        if (!arg || extra.length > 0 || !(input instanceof GraphQLInputObjectType)) {
          fail(where, 'an insert takes exactly one input object argument');
        }
        const columns = Object.values(input.getFields()).map((f) => {
          const name = directive(schema, f, 'column')?.name ?? snakeCase(f.name);
          return columnOf(`${input.name}.${f.name}`, f.name, f.type, name as string);
        });
        fields.push({
          kind: 'insert',
          parent: type.name,
          field: field.name,
          table,
          argument: arg.name,
          inputType: input.name,
          columns,
        });
      } else if (infer) {
        const where = `${at} @infer`;
        if (
          getNamedType(field.type).name !== 'Prediction' ||
          isListType(getNullableType(field.type))
        ) {
          fail(where, 'an @infer field has the type Prediction');
        }
        if (typeof infer.model !== 'string' || !/^[a-z][a-z0-9_-]*$/.test(infer.model)) {
          fail(where, `model ${JSON.stringify(infer.model)} is not a model name`);
        }
        noArguments(where, field);
        fields.push({
          kind: 'infer',
          parent: type.name,
          field: field.name,
          model: infer.model,
          table: tables.get(type.name),
        });
      } else if (http) {
        const where = `${at} @http`;
        const service = http.service;
        if (typeof service !== 'string' || !/^[a-z][a-z0-9_-]{0,62}$/.test(service)) {
          fail(where, `service ${JSON.stringify(service)} is not a service name`);
        }
        const table = tables.get(type.name);
        const names = {
          parent: (name: string) =>
            name in type.getFields() || (table?.columns.some((c) => c.column === name) ?? false),
          args: (name: string) => field.args.some((a) => a.name === name),
        };
        const path = String(http.path ?? '');
        if (!path.startsWith('/')) fail(where, 'path must start with /');
        const query = ((http.query as string[] | undefined) ?? []).map((item) => {
          const eq = item.indexOf('=');
          if (eq < 1) fail(where, `query ${JSON.stringify(item)} is not name=template`);
          return {
            name: item.slice(0, eq),
            value: parseTemplate(where, item.slice(eq + 1), names),
          };
        });
        let body: unknown;
        if (typeof http.body === 'string') {
          try {
            body = JSON.parse(http.body);
          } catch {
            fail(where, 'body is not a JSON template');
          }
          for (const text of JSON.stringify(body).match(/"(?:[^"\\]|\\.)*"/g) ?? []) {
            parseTemplate(where, JSON.parse(text) as string, names);
          }
        }
        const method = http.method === 'POST' ? 'POST' : 'GET';
        let batch: { param: string; by: string; key: string } | undefined;
        if (typeof http.batchParam === 'string') {
          if (typeof http.batchKey !== 'string') fail(where, 'batchParam needs batchKey');
          const by = typeof http.batchBy === 'string' ? http.batchBy : (table?.key.field ?? 'id');
          if (!names.parent(by))
            fail(where, `batchBy ${JSON.stringify(by)} is no field of ${type.name}`);
          batch = { param: http.batchParam, by, key: http.batchKey };
          if (rootNames.has(type.name)) fail(where, 'a root field has no parents to batch');
        }
        fields.push({
          kind: 'http',
          parent: type.name,
          field: field.name,
          service,
          method,
          path: parseTemplate(where, path, names),
          query,
          body,
          batch,
          select:
            typeof http.select === 'string' && http.select !== '' ? http.select.split('.') : [],
          answer: shapeField(field.name, field.type, new Set()),
        });
      } else if (isRoot && !resolved.has(at) && !ENGINE_ROOT_FIELDS.has(at)) {
        fail(
          at,
          'a root field needs a source directive (@lookup, @connection, @insert) or a resolver in schema.resolvers',
        );
      }
    }
  }
  return { tables, fields, scopes };
}

/** Root fields the engine answers itself (src/graphql/engine/*.graphql). */
export const ENGINE_ROOT_FIELDS: ReadonlySet<string> = new Set([
  'Query.viewer',
  'Query.models',
  'Query.predict',
]);
