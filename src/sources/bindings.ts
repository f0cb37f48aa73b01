/**
 * Source bindings: where each field of the operator's schema comes from, as plain data read
 * from the SDL's source directives (src/graphql/bindings.ts). Everything below src/graphql/
 * works from these, never from GraphQL types, and SQL is generated from them only.
 */

/** The GraphQL type behind a column, as far as storage and checks care. */
export type ScalarKind = 'ID' | 'String' | 'Int' | 'Float' | 'Boolean' | 'DateTime' | 'Enum';

export interface ColumnBinding {
  /** The GraphQL field (or input field) name. */
  readonly field: string;
  readonly column: string;
  readonly kind: ScalarKind;
  /** The GraphQL type's name (the enum's name for `Enum`). */
  readonly typeName: string;
  readonly nonNull: boolean;
  /** An enum's values, for checks. */
  readonly enumValues?: readonly string[] | undefined;
}

/** An object type bound to a table of each tenant's database. */
export interface TableBinding {
  /** The GraphQL object type. */
  readonly type: string;
  readonly table: string;
  readonly key: ColumnBinding;
  /** Every column a row is read with: the scalar fields, then the columns relations need. */
  readonly columns: readonly ColumnBinding[];
  /** Columns read only because relations join on them (no field of their own). */
  readonly joinColumns: readonly string[];
}

interface FieldBindingBase {
  /** The type the field is on (`Query`, `Mutation` or a table type). */
  readonly parent: string;
  readonly field: string;
}

/** `book(id: ID!): Book @lookup` */
export interface LookupBinding extends FieldBindingBase {
  readonly kind: 'lookup';
  readonly table: TableBinding;
  readonly argument: string;
  /** The unique column the argument is compared with. */
  readonly column: ColumnBinding;
}

export interface FilterBinding {
  readonly argument: string;
  readonly column: ColumnBinding;
  /** A list argument: membership instead of equality. */
  readonly list: boolean;
}

/** A page size argument: its default and the directive's own bound. */
export interface PageSize {
  readonly argument: string;
  readonly defaultValue: number;
  /** The directive's `max`; the plan's maxPageSize bounds it too. */
  readonly max: number | undefined;
}

/** `books(first:, after:, …): BookConnection! @connection` */
export interface ConnectionBinding extends FieldBindingBase {
  readonly kind: 'connection';
  readonly table: TableBinding;
  readonly connectionType: string;
  readonly edgeType: string;
  readonly first: PageSize;
  /** The cursor argument (`after`), when the field has one. */
  readonly after: string | undefined;
  readonly filters: readonly FilterBinding[];
}

export interface OrderTerm {
  readonly column: string;
  readonly descending: boolean;
}

/** `Author.books` (one-to-many) or `Book.author` (many-to-one). */
export interface RelationBinding extends FieldBindingBase {
  readonly kind: 'relation';
  readonly many: boolean;
  /** The parent's table. */
  readonly from: TableBinding;
  /** The related table (the field's type). */
  readonly to: TableBinding;
  /** The parent row's column whose value is looked up. */
  readonly parentColumn: string;
  /** The related table's column compared with it. */
  readonly childColumn: string;
  /** One-to-many only: the children's order and their number per parent. */
  readonly orderBy: readonly OrderTerm[];
  readonly first: PageSize | undefined;
  readonly filters: readonly FilterBinding[];
}

/** `createBook(input: CreateBookInput!): Book! @insert` */
export interface InsertBinding extends FieldBindingBase {
  readonly kind: 'insert';
  readonly table: TableBinding;
  readonly argument: string;
  readonly inputType: string;
  readonly columns: readonly ColumnBinding[];
}

/** `risk: Prediction @infer(model: "risk")` */
export interface InferBinding extends FieldBindingBase {
  readonly kind: 'infer';
  readonly model: string;
  /** The parent's table, when it has one (features are its fields). */
  readonly table: TableBinding | undefined;
}

/** A piece of a template: literal text, or a value from the parent or the arguments. */
export type TemplatePart =
  { readonly text: string } | { readonly from: 'parent' | 'args'; readonly name: string };

/** The shape an answer must have to be the field's value (checked before it is used). */
export type AnswerShape =
  | {
      readonly kind: 'scalar';
      readonly scalar: ScalarKind;
      readonly enumValues?: readonly string[];
    }
  | { readonly kind: 'object'; readonly fields: readonly ShapeField[] }
  /** An object type met again deeper down: checked as an object only. */
  | { readonly kind: 'any-object' };

export interface ShapeField {
  readonly name: string;
  readonly nonNull: boolean;
  readonly list: boolean;
  /** For list fields: whether the items are non-null. */
  readonly itemNonNull: boolean;
  readonly shape: AnswerShape;
}

/** `books: [Book!] @http(service: "catalog", path: "/books", batchParam: "authorId", …)` */
export interface HttpBinding extends FieldBindingBase {
  readonly kind: 'http';
  readonly service: string;
  readonly method: 'GET' | 'POST';
  readonly path: readonly TemplatePart[];
  readonly query: readonly { readonly name: string; readonly value: readonly TemplatePart[] }[];
  /** The JSON body template (strings may hold placeholders; a string that is one placeholder keeps the value's type). */
  readonly body: unknown;
  readonly batch: { readonly param: string; readonly by: string; readonly key: string } | undefined;
  readonly select: readonly string[];
  /** The field's own type, as the answer must be. */
  readonly answer: ShapeField;
}

export type SqlFieldBinding = LookupBinding | ConnectionBinding | RelationBinding | InsertBinding;
export type FieldBinding = SqlFieldBinding | InferBinding | HttpBinding;

export interface SchemaBindings {
  /** By GraphQL type name. */
  readonly tables: ReadonlyMap<string, TableBinding>;
  readonly fields: readonly FieldBinding[];
  /** `Type.field` → scopes the caller must hold. */
  readonly scopes: ReadonlyMap<string, readonly string[]>;
}

/** `Type.field`, the name bindings, loaders and statements are known by. */
export function bindingName(binding: FieldBindingBase): string {
  return `${binding.parent}.${binding.field}`;
}
