import type { ApolloServerOptionsWithGateway, BaseContext } from '@apollo/server';
import {
  type DocumentNode,
  execute,
  type ExecutionResult,
  GraphQLError,
  type GraphQLSchema,
  getVariableValues,
  type OperationDefinitionNode,
} from 'graphql';
import { compileQuery, type CompiledQuery, isCompiledQuery } from 'graphql-jit';
import { LRUCache } from 'lru-cache';

/** Apollo Server's gateway interface (the one seam AS5 leaves for a custom executor). */
export type JitGateway = ApolloServerOptionsWithGateway<BaseContext>['gateway'];

export const DEFAULT_COMPILE_AFTER_USES = 2;

/** Compiled operations kept per schema; an operation compiles in well under a millisecond. */
export const DEFAULT_MAX_COMPILED_OPERATIONS = 1_000;

export interface JitGatewayOptions {
  /** Compiled operations kept (least recently used dropped); default 1,000. */
  maxCompiledOperations?: number | undefined;
  /**
   * Uses of an operation before it is compiled (default 2): until then graphql-js runs it, so
   * one-off documents never pay for a compile.
   */
  compileAfterUses?: number | undefined;
  /** Told when an operation is compiled, or cannot be and runs on graphql-js instead. */
  onCompile?:
    ((event: { operationName: string | undefined; compiled: boolean }) => void) | undefined;
}

/** What the cache holds for one operation: its compiled form, or "graphql-js" if it has none. */
type Plan = CompiledQuery | 'graphql-js';

/**
 * graphql-jit's errors only borrow GraphQLError's prototype (no `nodes`, no `extensions` unless
 * the thrown error had some), which Apollo's error normalisation does not expect. Rebuilt as
 * graphql-js errors, with the thrown error as `originalError` (so a GatewayError keeps its code)
 * and the same path and locations graphql-js would report.
 */
function asGraphQLError(error: GraphQLError): GraphQLError {
  const rebuilt = new GraphQLError(error.message, {
    path: error.path,
    originalError: error.originalError ?? undefined,
    extensions: error.extensions,
  });
  if (error.locations) {
    Object.defineProperty(rebuilt, 'locations', { value: error.locations, enumerable: true });
  }
  return rebuilt;
}

function normalized(result: ExecutionResult): ExecutionResult {
  return result.errors ? { ...result, errors: result.errors.map(asGraphQLError) } : result;
}

/**
 * Variables are checked by graphql-js first, so a bad variable gets graphql-js's exact error
 * (which Apollo recognises: HTTP 400, BAD_USER_INPUT); graphql-jit words them differently.
 */
function variableErrors(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): readonly GraphQLError[] | undefined {
  const definitions = operation.variableDefinitions ?? [];
  if (definitions.length === 0) return undefined;
  return getVariableValues(schema, definitions, variables, { maxErrors: 50 }).errors;
}

/**
 * graphql-jit as the execution engine of an Apollo Server 5 instance over `schema`.
 *
 * AS5 removed the `executor` option; its `gateway` option is the seam left for one (the
 * federation gateway uses it). A gateway hands Apollo the schema (`onSchemaLoadOrUpdate`) and an
 * executor (`load`), which Apollo calls instead of graphql-js `execute` after its own parsing,
 * validation and `didResolveOperation` hooks: limits, persisted queries, error formatting and
 * the HTTP layer are unchanged. Not called in this mode: `willResolveField` plugin hooks
 * (Apollo's cache-control hints and field-level tracing).
 *
 * Each operation is compiled once (keyed by Apollo's query hash and the operation name) into
 * JavaScript that resolves and serialises its fields without graphql-js's generic walk. An
 * operation graphql-jit cannot compile runs on graphql-js, so the answer never depends on it.
 */
export function createJitGateway(
  schema: GraphQLSchema,
  options: JitGatewayOptions = {},
): JitGateway {
  const max = options.maxCompiledOperations ?? DEFAULT_MAX_COMPILED_OPERATIONS;
  if (!Number.isInteger(max) || max < 1) {
    throw new TypeError(
      `createJitGateway: maxCompiledOperations must be an integer ≥ 1, got ${max}`,
    );
  }
  const plans = new LRUCache<string, Plan>({ max });
  // Compiling costs several times a graphql-js execution, so a flood of one-off documents
  // must not buy a compile each: an operation is compiled on its second use, when it has
  // shown it repeats (the documents a front-end sends do, at once).
  const compileAfterUses = options.compileAfterUses ?? DEFAULT_COMPILE_AFTER_USES;
  const uses = new LRUCache<string, number>({ max: max * 4 });

  function planFor(
    queryHash: string,
    document: DocumentNode,
    operationName: string | undefined,
  ): Plan {
    // The NUL cannot occur in a hash, so no two (hash, name) pairs share a key.
    const key = `${queryHash}\u0000${operationName ?? ''}`;
    let plan = plans.get(key);
    if (plan === undefined) {
      const used = (uses.get(key) ?? 0) + 1;
      if (used < compileAfterUses) {
        uses.set(key, used);
        return 'graphql-js';
      }
      uses.delete(key);
      let compiled: CompiledQuery | ExecutionResult | undefined;
      try {
        compiled = compileQuery(schema, document, operationName);
      } catch {
        // A compiler limitation, not the client's mistake: graphql-js answers instead.
        compiled = undefined;
      }
      plan = compiled && isCompiledQuery(compiled) ? compiled : 'graphql-js';
      plans.set(key, plan);
      options.onCompile?.({ operationName, compiled: plan !== 'graphql-js' });
    }
    return plan;
  }

  return {
    onSchemaLoadOrUpdate(callback) {
      // The schema never changes: tell Apollo once, at subscription (it subscribes before load).
      callback({ apiSchema: schema, coreSupergraphSdl: '' });
      return () => {};
    },
    async load() {
      return {
        async executor(request): Promise<ExecutionResult> {
          const variables = request.request.variables ?? {};
          // Apollo calls the executor even when the document has no operation by the name the
          // client gave (e.g. ""); graphql-js then words the error Apollo expects to see.
          const operation = request.operation as OperationDefinitionNode | undefined;
          const plan = operation
            ? planFor(request.queryHash, request.document, operation.name?.value)
            : 'graphql-js';
          if (plan === 'graphql-js' || !operation) {
            return execute({
              schema,
              document: request.document,
              contextValue: request.context,
              variableValues: variables,
              operationName: request.request.operationName,
            });
          }
          const errors = variableErrors(schema, operation, variables);
          if (errors) return { errors };
          return normalized(await plan.query(undefined, request.context, variables));
        },
      };
    },
    async stop() {
      plans.clear();
      uses.clear();
    },
  };
}
