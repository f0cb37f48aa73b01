import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import {
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  parse,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { OperationLimits } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Tenant } from '../tenancy/tenant.js';
import {
  analyzeOperation,
  countExpandedFields,
  countTokens,
  countValues,
  type FieldCost,
  type OperationShape,
  operationCost,
  selectOperation,
} from '../graphql/operation-analysis.js';

/** List size of a list field that declares no `@listSize` and has no slicing argument. */
export const DEFAULT_LIST_SIZE = 10;
/**
 * Depth bound inside `__schema`/`__type`. Introspection is exempt from the plan's depth limit
 * because the standard client query (`getIntrospectionQuery()`) nests `ofType` nine times
 * (depth 15): those chains are single objects, not fan-out. Fan-out through `fields`,
 * `interfaces`, `possibleTypes` and `inputFields` is refused by graphql-js's
 * MaxIntrospectionDepthRule in Apollo's validation; this bound stops arbitrarily long chains.
 */
export const DEFAULT_INTROSPECTION_MAX_DEPTH = 20;

/** What the plugin needs from the request context: the tenant whose plan sets the limits. */
export interface OperationLimitsContext {
  tenant: Pick<Tenant, 'id'> & { limits: Pick<Tenant['limits'], 'operation' | 'introspection'> };
}

export interface OperationLimitsOptions {
  /** Size of a list field with no `@listSize` and no slicing argument; default 10. */
  defaultListSize?: number;
  /** `Type.field` → cost settings, overriding the SDL's `@cost`/`@listSize` for that field. */
  fieldCosts?: Readonly<Record<string, FieldCost>>;
  /** Depth bound inside introspection subtrees; default {@link DEFAULT_INTROSPECTION_MAX_DEPTH}. */
  introspectionMaxDepth?: number;
}

/** Which limit refused an operation (the `limit` extension of the error). */
export type OperationLimitName = keyof OperationLimits | 'introspection' | 'introspectionDepth';

const LABELS: Readonly<Record<OperationLimitName, string>> = {
  depth: 'depth',
  aliases: 'aliases',
  rootFields: 'root fields',
  directives: 'directives',
  tokens: 'tokens',
  expandedFields: 'expanded fields',
  variableValues: 'variable values',
  cost: 'estimated cost',
  introspection: 'introspection',
  introspectionDepth: 'introspection depth',
};

function refuse(limit: OperationLimitName, value: number, max: number): GatewayError {
  const shown = Number.isFinite(value) ? Math.min(value, Number.MAX_SAFE_INTEGER) : 'unbounded';
  const message =
    limit === 'tokens'
      ? `Operation refused: the document has more than ${max} tokens (limit ${max}).`
      : limit === 'expandedFields'
        ? `Operation refused: the document has more than ${max} fields once its fragments are expanded (limit ${max}).`
        : limit === 'variableValues'
          ? `Operation refused: the variables hold more than ${max} values (limit ${max}).`
          : `Operation refused: ${LABELS[limit]} ${shown} exceeds the limit of ${max}.`;
  return new GatewayError('OPERATION_LIMIT', message, {
    request: true,
    extensions: { limit, value: shown, max },
  });
}

/**
 * The refusal of `__schema`/`__type` (or the SDL) where the tenant's plan disallows
 * introspection: a plan capability, like the other limits, whereas FORBIDDEN is about who the
 * caller is.
 */
export function introspectionRefused(): GatewayError {
  return new GatewayError(
    'OPERATION_LIMIT',
    "Operation refused: introspection is not enabled for this tenant's plan.",
    { request: true, extensions: { limit: 'introspection' } },
  );
}

function check(limit: OperationLimitName, value: number, max: number): void {
  if (value > max) throw refuse(limit, value, max);
}

function checkOptions(options: OperationLimitsOptions): void {
  for (const key of ['defaultListSize', 'introspectionMaxDepth'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new TypeError(`${key} must be a positive integer; got ${String(value)}`);
    }
  }
}

/** The `query` and `variables` of a request as Apollo Server will read them. */
function requestParts(request: { method: string; search: string; body: unknown }): {
  query: unknown;
  variables: unknown;
} {
  if (request.method === 'GET') {
    const params = new URLSearchParams(request.search);
    let variables: unknown;
    try {
      variables = JSON.parse(params.get('variables') ?? 'null');
    } catch {
      // Apollo words it.
    }
    return { query: params.get('query'), variables };
  }
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { query: undefined, variables: undefined };
  }
  const { query, variables } = body as { query?: unknown; variables?: unknown };
  return { query, variables };
}

/**
 * Refuses a request too big to go further, before Apollo Server parses, validates and executes
 * it, by what the tenant's plan admits: more than `limits.tokens` tokens in the document
 * (counted with the lexer, stopping at `tokens + 1`, so a 1 MB document of tokens costs a
 * bounded lexer pass and no AST); more than `limits.expandedFields` fields once its fragments
 * are expanded (counted on a parse that the token limit bounds, in linear time; see
 * {@link countExpandedFields}), so fragment fan-out never reaches the super-linear steps after
 * it (field-merging validation, graphql-jit's compiler); more than `limits.variableValues`
 * values in its variables (variable coercion costs ~10× the JSON parse per value).
 *
 * For the HTTP adapter, on the request as Apollo Server will receive it (the `query` and
 * `variables` of a JSON body, or of the query string for GET); anything of another type there,
 * or that does not parse, is left for Apollo to refuse. This cannot be a plugin hook: Apollo
 * Server turns an error thrown by `didResolveSource`, `parsingDidStart` or
 * `validationDidStart` into a 500.
 */
export function checkRequestSize(
  request: { method: string; search: string; body: unknown },
  limits: Pick<OperationLimits, 'tokens' | 'expandedFields' | 'variableValues'>,
  tenantId: string,
): void {
  const { query, variables } = requestParts(request);
  if (typeof variables === 'object' && variables !== null) {
    const max = limits.variableValues;
    // The variables object itself is not one of its values.
    check('variableValues', countValues(variables, max + 1) - 1, max);
  }
  if (typeof query !== 'string') return;
  const key = countedKey(tenantId, query);
  const known = counted.get(key);
  if (known) {
    check('tokens', known.tokens, limits.tokens);
    check('expandedFields', known.expandedFields, limits.expandedFields);
    return;
  }
  const tokens = countTokens(query, limits.tokens);
  check('tokens', tokens, limits.tokens);
  let document: DocumentNode;
  try {
    document = parse(query, { noLocation: true, maxTokens: limits.tokens });
  } catch {
    // A syntax error: Apollo words it.
    return;
  }
  const expandedFields = countExpandedFields(document, limits.expandedFields);
  check('expandedFields', expandedFields, limits.expandedFields);
  counted.set(key, { tokens, expandedFields });
}

/**
 * The counts of documents that passed {@link checkRequestSize}, by tenant and text: exact
 * (each within its limit then), so a later check against any limit — the plan may have changed
 * since — compares without lexing or parsing again. A client repeats its documents, and without
 * this each request lexed and parsed its document once more before Apollo's document cache.
 * Bounded by entries and by the characters of the texts kept; a refused document is not kept.
 */
const counted = new LRUCache<string, { tokens: number; expandedFields: number }>({
  max: 4_096,
  maxSize: 16 * 1024 * 1024,
  sizeCalculation: (_, key) => key.length,
});

function countedKey(tenantId: string, query: string): string {
  return `${tenantId}\n${query}`;
}

/** The tokens counted of `query` for the tenant when it last passed, if it is remembered. */
function knownTokens(tenantId: string, query: string): number | undefined {
  return counted.get(countedKey(tenantId, query))?.tokens;
}

/**
 * Apollo Server plugin enforcing the tenant's plan limits on every operation before it runs
 * (DESIGN.md, limits/): tokens, variable values, introspection permission, expanded fields,
 * depth, aliases, root fields, directives, and the estimated cost with the request's
 * variables. It runs in `didResolveOperation` — after validation, on every request, because
 * Apollo's document cache is shared by the tenants of a schema variant and their plans differ.
 * A refusal ends the request: HTTP 400, code `OPERATION_LIMIT`, a message naming the limit,
 * its value and its maximum, and extensions `{ limit, value, max }`. Pair it with
 * {@link checkRequestSize} in the HTTP adapter, which refuses oversized requests before Apollo
 * parses, validates and executes them.
 *
 * Introspection (`__schema`/`__type`) is refused with the same code when the plan disallows
 * it: it is a plan capability decided from the document alone, like the other limits, whereas
 * FORBIDDEN is about who the caller is. `__typename` is always allowed.
 */
export function operationLimitsPlugin<TContext extends OperationLimitsContext>(
  options: OperationLimitsOptions = {},
): ApolloServerPlugin<TContext> {
  checkOptions(options);
  const defaultListSize = options.defaultListSize ?? DEFAULT_LIST_SIZE;
  const introspectionMaxDepth = options.introspectionMaxDepth ?? DEFAULT_INTROSPECTION_MAX_DEPTH;
  // Shapes depend on the document and operation name only; Apollo's document cache hands back
  // the same DocumentNode for the same query, so this memo lives exactly as long as it does.
  const shapes = new WeakMap<DocumentNode, Map<string, OperationShape | null>>();

  function shapeOf(document: DocumentNode, operationName: string | null | undefined) {
    let byName = shapes.get(document);
    if (!byName) {
      byName = new Map();
      shapes.set(document, byName);
    }
    const key = operationName ?? '';
    let shape = byName.get(key);
    if (shape === undefined) {
      const operation = selectOperation(document, operationName);
      shape = operation ? analyzeOperation(document, operation) : null;
      byName.set(key, shape);
    }
    return shape;
  }

  // An operation without variables costs the same every time it runs on a schema: kept with
  // the operation (Apollo's document cache hands back the same AST), per schema.
  const constantCosts = new WeakMap<
    OperationDefinitionNode,
    { schema: GraphQLSchema; cost: number }
  >();

  function costOf(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    schema: GraphQLSchema,
    variables: Record<string, unknown> | undefined,
  ): number {
    const constant = (operation.variableDefinitions ?? []).length === 0;
    const known = constant ? constantCosts.get(operation) : undefined;
    if (known !== undefined && known.schema === schema) return known.cost;
    const cost = operationCost(document, operation, {
      schema,
      variables,
      defaultListSize,
      fieldCosts: options.fieldCosts,
    });
    if (constant) constantCosts.set(operation, { schema, cost });
    return cost;
  }

  function checkShape(
    context: TContext,
    document: DocumentNode,
    operationName: string | null | undefined,
  ): void {
    // An ambiguous or unknown operation name is Apollo's to report.
    const shape = shapeOf(document, operationName);
    if (!shape) return;
    const { operation: limits, introspection } = context.tenant.limits;
    if (shape.introspection && !introspection) throw introspectionRefused();
    // Already checked by checkRequestSize for HTTP requests, before validation.
    check('expandedFields', shape.expandedFields, limits.expandedFields);
    check('depth', shape.depth, limits.depth);
    check('introspectionDepth', shape.introspectionDepth, introspectionMaxDepth);
    check('aliases', shape.aliases, limits.aliases);
    check('rootFields', shape.rootFields, limits.rootFields);
    check('directives', shape.directives, limits.directives);
  }

  // One listener for every request: it keeps nothing of its own.
  const listener: GraphQLRequestListener<TContext> = {
    async didResolveOperation({ source, document, operation, request, contextValue, schema }) {
      const limits = contextValue.tenant.limits.operation;
      // Already checked on the raw request by checkRequestSize; again here for requests that
      // did not come through the HTTP adapter (executeOperation), which are small by then.
      const text = source ?? '';
      const tokens = knownTokens(contextValue.tenant.id, text) ?? countTokens(text, limits.tokens);
      check('tokens', tokens, limits.tokens);
      const values = countValues(request.variables ?? {}, limits.variableValues + 1) - 1;
      check('variableValues', values, limits.variableValues);
      checkShape(contextValue, document, request.operationName);
      if (!operation) return;
      // graphql-js 16 only notices a missing root type at execution, as an uncoded error
      // (masked as a 500); refuse it here as the client's mistake.
      if (!schema.getRootType(operation.operation)) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          `This API has no ${operation.operation} operations.`,
          { request: true, extensions: { reason: 'OPERATION_NOT_SUPPORTED' } },
        );
      }
      check('cost', costOf(document, operation, schema, request.variables), limits.cost);
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}
