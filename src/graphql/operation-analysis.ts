import {
  type DirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  getDirectiveValues,
  getNamedType,
  type GraphQLDirective,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type GraphQLType,
  isCompositeType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  Kind,
  Lexer,
  type OperationDefinitionNode,
  type SelectionSetNode,
  Source,
  TokenKind,
  type ValueNode,
} from 'graphql';

/**
 * Counts the lexical tokens of a GraphQL document the way graphql-js's `parse({ maxTokens })`
 * does (comments and whitespace are not tokens), stopping at `max + 1`: refusing a huge
 * document costs at most `max + 1` tokens of lexing and no AST. A lexical error ends the count
 * early; the parser reports it afterwards.
 */
export function countTokens(source: string, max: number): number {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (count <= max && lexer.advance().kind !== TokenKind.EOF) count += 1;
  } catch {
    // A syntax error: not ours to report.
  }
  return count;
}

/**
 * Counts the values of a JSON value — itself, and every member and item at any depth — stopping
 * at `max + 1`. Without recursion: request variables nest as deep as a body allows (JSON.parse
 * takes a million levels). What graphql-js's variable coercion costs grows with this count.
 */
export function countValues(value: unknown, max: number): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && count <= max) {
    const next = pending.pop();
    count += 1;
    if (next === null || typeof next !== 'object') continue;
    for (const member of Array.isArray(next) ? next : Object.values(next)) {
      if (count + pending.length > max) break;
      pending.push(member);
    }
  }
  return Math.min(count + pending.length, max + 1);
}

/** The shape of one operation: what the structural limits are checked against. */
export interface OperationShape {
  /** Deepest field nesting outside `__schema`/`__type` subtrees (a root field is depth 1). */
  depth: number;
  /** Deepest nesting inside `__schema`/`__type` subtrees, counted from that field (0: none). */
  introspectionDepth: number;
  /** Aliased fields, counting a fragment once per spread. */
  aliases: number;
  /** Distinct response keys at the root of the operation. */
  rootFields: number;
  /** Directive uses in the operation and the fragments it spreads (once per spread). */
  directives: number;
  /** Whether the operation selects `__schema` or `__type` anywhere. */
  introspection: boolean;
  /** Fields once fragments are expanded ({@link countExpandedFields}), exact up to 2^53. */
  expandedFields: number;
}

const INTROSPECTION_ROOTS = new Set(['__schema', '__type']);

/** The operation a request runs: the named one, or the only one; undefined if ambiguous. */
export function selectOperation(
  document: DocumentNode,
  operationName: string | null | undefined,
): OperationDefinitionNode | undefined {
  const operations = document.definitions.filter(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
  );
  if (operationName) return operations.find((o) => o.name?.value === operationName);
  return operations.length === 1 ? operations[0] : undefined;
}

function fragmentsOf(document: DocumentNode): Map<string, FragmentDefinitionNode> {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      // The first definition wins; duplicates fail validation anyway.
      if (!fragments.has(definition.name.value)) fragments.set(definition.name.value, definition);
    }
  }
  return fragments;
}

interface SubtreeStats {
  depth: number;
  introspectionDepth: number;
  aliases: number;
  directives: number;
  introspection: boolean;
}

const EMPTY: SubtreeStats = {
  depth: 0,
  introspectionDepth: 0,
  aliases: 0,
  directives: 0,
  introspection: false,
};

const directiveCount = (directives: readonly DirectiveNode[] | undefined) =>
  directives?.length ?? 0;

/**
 * Measures an operation. Safe on documents that have not been validated yet (unknown
 * fragments count as empty, fragment cycles are cut), so it can run before validation; each
 * fragment is measured once per context, so fragment fan-out costs linear time even when the
 * counts it produces are exponential.
 */
export function analyzeOperation(
  document: DocumentNode,
  operation: OperationDefinitionNode,
): OperationShape {
  const fragments = fragmentsOf(document);
  const memo = new Map<string, SubtreeStats>();
  const visiting = new Set<string>();

  function fragment(name: string, inIntrospection: boolean): SubtreeStats {
    const key = `${inIntrospection ? 'i' : 'r'}:${name}`;
    const known = memo.get(key);
    if (known) return known;
    const definition = fragments.get(name);
    if (!definition || visiting.has(key)) return EMPTY;
    visiting.add(key);
    const stats = selectionSet(definition.selectionSet, inIntrospection);
    visiting.delete(key);
    const result = {
      ...stats,
      directives: stats.directives + directiveCount(definition.directives),
    };
    memo.set(key, result);
    return result;
  }

  function selectionSet(set: SelectionSetNode, inIntrospection: boolean): SubtreeStats {
    const total = { ...EMPTY };
    for (const selection of set.selections) {
      let stats: SubtreeStats;
      let directives = directiveCount(selection.directives);
      if (selection.kind === Kind.FIELD) {
        stats = field(selection, inIntrospection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        stats = selectionSet(selection.selectionSet, inIntrospection);
      } else {
        stats = fragment(selection.name.value, inIntrospection);
      }
      directives += stats.directives;
      total.depth = Math.max(total.depth, stats.depth);
      total.introspectionDepth = Math.max(total.introspectionDepth, stats.introspectionDepth);
      total.aliases += stats.aliases;
      total.directives += directives;
      total.introspection ||= stats.introspection;
    }
    return total;
  }

  function field(node: FieldNode, inIntrospection: boolean): SubtreeStats {
    const entering = !inIntrospection && INTROSPECTION_ROOTS.has(node.name.value);
    const inside = inIntrospection || entering;
    const child = node.selectionSet ? selectionSet(node.selectionSet, inside) : EMPTY;
    return {
      // The __schema/__type field itself is one level of the operation; below it, depth is
      // measured against the introspection bound instead.
      depth: inside ? (entering ? 1 : 0) : 1 + child.depth,
      introspectionDepth: inside ? 1 + child.introspectionDepth : child.introspectionDepth,
      aliases: child.aliases + (node.alias ? 1 : 0),
      directives: child.directives,
      introspection: entering || child.introspection,
    };
  }

  const stats = selectionSet(operation.selectionSet, false);
  let directives = stats.directives + directiveCount(operation.directives);
  for (const variable of operation.variableDefinitions ?? []) {
    directives += directiveCount(variable.directives);
  }
  return {
    depth: stats.depth,
    introspectionDepth: stats.introspectionDepth,
    aliases: stats.aliases,
    rootFields: rootResponseKeys(operation.selectionSet, fragments),
    directives,
    introspection: stats.introspection,
    expandedFields: countExpandedFields(document, Number.MAX_SAFE_INTEGER - 1, operation),
  };
}

/**
 * Counts the fields of a document with every fragment spread replaced by its fragment's fields:
 * the size that a walk of the expanded document costs (graphql-jit's compiler inlines every
 * spread; field-merging validation compares expanded fields). A few hundred tokens of fragments
 * that each spread the next one twice expand to millions of fields, so this runs before any
 * such step and costs time linear in the document: each fragment is counted once and reused at
 * every spread, and the count saturates at `max + 1` (then it stops), so it never overflows and
 * never expands anything.
 *
 * With `operation`, counts that operation (what an executor runs). Without, the whole document
 * as validation walks it: every operation, plus each fragment definition no operation spreads
 * (validated on its own). Safe before validation: unknown fragments count nothing, and a spread
 * that closes a fragment cycle counts nothing (validation refuses cycles).
 */
export function countExpandedFields(
  document: DocumentNode,
  max: number,
  operation?: OperationDefinitionNode,
): number {
  const cap = max + 1;
  const fragments = fragmentsOf(document);
  const counted = new Map<string, number>();
  const visiting = new Set<string>();

  function fragment(name: string): number {
    const known = counted.get(name);
    if (known !== undefined) return known;
    const definition = fragments.get(name);
    if (!definition || visiting.has(name)) return 0;
    visiting.add(name);
    const count = selectionSet(definition.selectionSet);
    visiting.delete(name);
    counted.set(name, count);
    return count;
  }

  function selectionSet(set: SelectionSetNode): number {
    let count = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        count += 1 + (selection.selectionSet ? selectionSet(selection.selectionSet) : 0);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        count += selectionSet(selection.selectionSet);
      } else {
        count += fragment(selection.name.value);
      }
      if (count >= cap) return cap;
    }
    return count;
  }

  if (operation) return selectionSet(operation.selectionSet);
  let total = 0;
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) {
      total += selectionSet(definition.selectionSet);
    } else if (
      definition.kind === Kind.FRAGMENT_DEFINITION &&
      definition !== fragments.get(definition.name.value)
    ) {
      // A second definition of a name (validation refuses it, after walking it).
      total += selectionSet(definition.selectionSet);
    }
    if (total >= cap) return cap;
  }
  for (const name of fragments.keys()) {
    if (!counted.has(name)) total += fragment(name);
    if (total >= cap) return cap;
  }
  return total;
}

function rootResponseKeys(
  set: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): number {
  const keys = new Set<string>();
  const seen = new Set<string>();
  const collect = (s: SelectionSetNode) => {
    for (const selection of s.selections) {
      if (selection.kind === Kind.FIELD) {
        keys.add(selection.alias?.value ?? selection.name.value);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        collect(selection.selectionSet);
      } else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const definition = fragments.get(selection.name.value);
        if (definition) collect(definition.selectionSet);
      }
    }
  };
  collect(set);
  return keys.size;
}

/** How one field is costed; from the SDL's `@cost`/`@listSize` or from configuration. */
export interface FieldCost {
  /** Cost of one resolved value of the field (default: 1 for objects, 0 for scalars/enums). */
  weight?: number | undefined;
  /** List size when no slicing argument gives one (default: the plugin's `defaultListSize`). */
  assumedSize?: number | undefined;
  /** Arguments whose value is the list's size, e.g. `["first"]` (the largest one given wins). */
  slicingArguments?: readonly string[] | undefined;
  /**
   * Child fields the slicing argument sizes instead of this field (a connection's `edges`):
   * `books(first: 50)` returns one connection whose `edges` list holds 50.
   */
  sizedFields?: readonly string[] | undefined;
}

export interface CostOptions {
  schema: GraphQLSchema;
  /** The request's variables as sent (raw JSON values). */
  variables?: Readonly<Record<string, unknown>> | undefined;
  /** Size of a list field that declares none. */
  defaultListSize: number;
  /** `Type.field` → cost settings; overrides the SDL directives of that field. */
  fieldCosts?: Readonly<Record<string, FieldCost>> | undefined;
}

const settingsBySchema = new WeakMap<GraphQLSchema, Map<string, FieldCost>>();

function directiveValues(
  directive: GraphQLDirective | null | undefined,
  node: Parameters<typeof getDirectiveValues>[1] | null | undefined,
): Record<string, unknown> | undefined {
  if (!directive || !node) return undefined;
  try {
    return getDirectiveValues(directive, node);
  } catch {
    return undefined;
  }
}

/** Cost settings a schema declares for one field, read once per schema. */
function sdlSettings(
  schema: GraphQLSchema,
  parent: GraphQLNamedType,
  field: GraphQLField<unknown, unknown>,
): FieldCost {
  let cache = settingsBySchema.get(schema);
  if (!cache) {
    cache = new Map();
    settingsBySchema.set(schema, cache);
  }
  const key = `${parent.name}.${field.name}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const cost = directiveValues(schema.getDirective('cost'), field.astNode);
  const listSize = directiveValues(schema.getDirective('listSize'), field.astNode);
  const named = getNamedType(field.type);
  const typeCost =
    directiveValues(schema.getDirective('cost'), named.astNode) ??
    named.extensionASTNodes
      .map((n) => directiveValues(schema.getDirective('cost'), n))
      .find((v) => v !== undefined);
  const settings: FieldCost = {
    weight: numberOr(cost?.weight, numberOr(typeCost?.weight, undefined)),
    assumedSize: numberOr(listSize?.assumedSize, undefined),
    slicingArguments: stringsOr(listSize?.slicingArguments),
    sizedFields: stringsOr(listSize?.sizedFields),
  };
  cache.set(key, settings);
  return settings;
}

function numberOr<T>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function stringsOr(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string')
    ? (value as string[])
    : undefined;
}

function listDepth(type: GraphQLType): number {
  let depth = 0;
  let current: GraphQLType = type;
  for (;;) {
    if (isNonNullType(current)) current = current.ofType;
    else if (isListType(current)) {
      depth += 1;
      current = current.ofType;
    } else return depth;
  }
}

/**
 * The estimated cost of an operation, after the IBM GraphQL Cost Directive specification:
 * each resolved object costs its weight (default 1; scalars and enums 0; `@cost(weight:)` on
 * the field or its type overrides), and a list multiplies the cost of one element by its size —
 * the largest `slicingArguments` value given (literal, variable or default), else
 * `assumedSize`, else `defaultListSize`. Branches on different type conditions are summed (an
 * upper bound). Introspection fields cost nothing here: they touch no backend, and their shape
 * is bounded separately. Run it on a validated document.
 */
export function operationCost(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  options: CostOptions,
): number {
  const { schema, defaultListSize } = options;
  const variables = options.variables ?? {};
  const fragments = fragmentsOf(document);
  const variableDefaults = new Map<string, ValueNode>();
  for (const definition of operation.variableDefinitions ?? []) {
    if (definition.defaultValue) {
      variableDefaults.set(definition.variable.name.value, definition.defaultValue);
    }
  }
  const memo = new Map<string, number>();
  const visiting = new Set<string>();

  function settingsFor(parent: GraphQLNamedType, field: GraphQLField<unknown, unknown>) {
    const sdl = sdlSettings(schema, parent, field);
    const configured = options.fieldCosts?.[`${parent.name}.${field.name}`];
    return configured ? { ...sdl, ...configured } : sdl;
  }

  function intValue(node: ValueNode | undefined): number | undefined {
    if (!node) return undefined;
    if (node.kind === Kind.INT) return Number(node.value);
    if (node.kind === Kind.VARIABLE) {
      const name = node.name.value;
      if (Object.hasOwn(variables, name)) {
        const value = variables[name];
        return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
      }
      return intValue(variableDefaults.get(name));
    }
    return undefined;
  }

  function sliceSize(
    node: FieldNode,
    field: GraphQLField<unknown, unknown>,
    settings: FieldCost,
  ): number {
    const sizes: number[] = [];
    for (const name of settings.slicingArguments ?? []) {
      const argument = node.arguments?.find((a) => a.name.value === name);
      // Absent, null or a variable left out: the argument's declared default applies.
      let size = argument ? intValue(argument.value) : undefined;
      if (size === undefined) {
        const declared = field.args.find((a) => a.name === name)?.defaultValue;
        if (typeof declared === 'number') size = declared;
      }
      if (size !== undefined) sizes.push(Math.max(0, size));
    }
    return sizes.length > 0 ? Math.max(...sizes) : (settings.assumedSize ?? defaultListSize);
  }

  function selectionSetCost(
    set: SelectionSetNode,
    parent: GraphQLNamedType,
    sized: ReadonlyMap<string, number> | undefined,
  ): number {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        total += fieldCost(selection, parent, sized);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition
          ? schema.getType(selection.typeCondition.name.value)
          : parent;
        if (type) total += selectionSetCost(selection.selectionSet, type, sized);
      } else {
        const name = selection.name.value;
        const key = `${name}|${sized ? [...sized].join(',') : ''}`;
        const known = memo.get(key);
        if (known !== undefined) {
          total += known;
          continue;
        }
        const definition = fragments.get(name);
        const type = definition && schema.getType(definition.typeCondition.name.value);
        if (!definition || !type || visiting.has(key)) continue;
        visiting.add(key);
        const cost = selectionSetCost(definition.selectionSet, type, sized);
        visiting.delete(key);
        memo.set(key, cost);
        total += cost;
      }
    }
    return total;
  }

  function fieldCost(
    node: FieldNode,
    parent: GraphQLNamedType,
    sized: ReadonlyMap<string, number> | undefined,
  ): number {
    const name = node.name.value;
    if (name.startsWith('__')) return 0;
    if (!isObjectType(parent) && !isInterfaceType(parent)) return 0;
    const field = parent.getFields()[name];
    if (!field) return 0;
    const settings = settingsFor(parent, field);
    const named = getNamedType(field.type);
    const weight = settings.weight ?? (isCompositeType(named) ? 1 : 0);
    const lists = listDepth(field.type);
    const sizes = settings.sizedFields && settings.sizedFields.length > 0;
    let multiplier = 1;
    if (lists > 0) {
      // A connection's `edges` takes its size from the parent's slicing argument.
      multiplier =
        sized?.get(name) ??
        (sizes ? (settings.assumedSize ?? defaultListSize) : sliceSize(node, field, settings));
      multiplier *= defaultListSize ** (lists - 1);
    }
    const childSized = sizes
      ? new Map((settings.sizedFields ?? []).map((f) => [f, sliceSize(node, field, settings)]))
      : undefined;
    const children = node.selectionSet ? selectionSetCost(node.selectionSet, named, childSized) : 0;
    return multiplier * (weight + children);
  }

  const root =
    operation.operation === 'query'
      ? schema.getQueryType()
      : operation.operation === 'mutation'
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  return root ? selectionSetCost(operation.selectionSet, root, undefined) : 0;
}
