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
import { analyzeOperation } from './operation-analysis.js';

/** Apollo Server's gateway interface (the one seam AS5 leaves for a custom executor). */
export type JitGateway = ApolloServerOptionsWithGateway<BaseContext>['gateway'];

export const DEFAULT_COMPILE_AFTER_USES = 2;

/** Compiled operations kept per schema. */
export const DEFAULT_MAX_COMPILED_OPERATIONS = 1_000;

/**
 * Expanded fields (fragments inlined) of the largest operation compiled. graphql-jit compiles on
 * the event loop at 50–200 µs per expanded field (the standard introspection query: 220 fields,
 * 40 ms), and its compiler walks the expansion without sharing repeated fragments (26 levels of
 * fan-out: 32 s); so compiling stays under ~20 ms, and larger operations run on graphql-js.
 */
export const DEFAULT_JIT_MAX_COMPILE_FIELDS = 100;

/**
 * Event-loop time graphql-jit may spend compiling, per second of wall-clock time, in ms (5% of
 * the process's one thread): the refill rate of a budget that holds at most
 * DEFAULT_JIT_COMPILE_BURST_MS. A compile starts only when the budget covers its worst-case
 * estimate (expanded fields × DEFAULT_JIT_COMPILE_MS_PER_FIELD, capped at the burst); otherwise
 * graphql-js answers and the operation is compiled on a later use. So documents nobody has sent
 * before — however many, from however many tenants — cost the event loop at most a twentieth of
 * its time in compiles, and every answer stays graphql-js's.
 */
export const DEFAULT_JIT_COMPILE_BUDGET_MS_PER_SECOND = 50;
/** The most compile time the budget holds (what a start, or a quiet minute, leaves to spend). */
export const DEFAULT_JIT_COMPILE_BURST_MS = 100;
/** The compile cost per expanded field assumed before compiling (the slowest measured). */
export const DEFAULT_JIT_COMPILE_MS_PER_FIELD = 0.2;

/**
 * Why an operation runs as it does: `compiled` by graphql-jit, or on graphql-js because of its
 * size, because it introspects (nothing to gain), because it uses directives (graphql-jit sorts
 * the keys of an object by a field's first mention even where `@skip`/`@include` drops that
 * mention, graphql-js by the fields it collects), because graphql-jit's compiler failed, or
 * because graphql-jit refused variables graphql-js accepted (`variables`: its coercion ignores
 * the default of a non-null input field, e.g. `itemCount: Int! = 1`).
 */
export type JitPlanReason =
  'compiled' | 'expanded-size' | 'introspection' | 'directives' | 'compiler-error' | 'variables';

/**
 * What a compile budget has let through: `compiles` taking `compileMs` in all, and `deferred`
 * uses that ran on graphql-js because it did not cover their compile yet.
 */
export interface JitCompileStats {
  compiles: number;
  compileMs: number;
  deferred: number;
}

export interface JitPlanEvent {
  operationName: string | undefined;
  compiled: boolean;
  reason: JitPlanReason;
}

export interface JitGatewayOptions {
  /** Compiled operations kept (least recently used dropped); default 1,000. */
  maxCompiledOperations?: number | undefined;
  /**
   * Uses of an operation before it is compiled (default 2): until then graphql-js runs it, so
   * one-off documents never pay for a compile.
   */
  compileAfterUses?: number | undefined;
  /** Largest operation compiled, in expanded fields; default DEFAULT_JIT_MAX_COMPILE_FIELDS. */
  maxCompileFields?: number | undefined;
  /** Told when an operation is compiled, or runs on graphql-js instead (and why). */
  onCompile?: ((event: JitPlanEvent) => void) | undefined;
  /**
   * The event-loop time its compiles may take ({@link createCompileBudget}), shared by every
   * gateway given the same one (createGateway gives all its schema variants one); without one,
   * this gateway has its own, with the default rate and burst.
   */
  compileBudget?: CompileBudget | undefined;
}

/** Event-loop time for graphql-jit's compiles, refilled with the clock (a token bucket). */
export interface CompileBudget {
  /**
   * Runs `compile` if the budget covers `estimateMs` now, and charges the estimate (or what the
   * compile took, if more); otherwise counts a deferral and returns undefined without running it.
   */
  attempt<T>(estimateMs: number, compile: () => T): { value: T } | undefined;
  stats(): JitCompileStats;
}

export interface CompileBudgetOptions {
  msPerSecond?: number | undefined;
  burstMs?: number | undefined;
  /** Milliseconds, monotonic; default performance.now (injected by tests, never asserted on). */
  clock?: (() => number) | undefined;
}

/**
 * A compile budget: starts full (`burstMs`), refills at `msPerSecond`, never holds more than
 * `burstMs`. A compile may start when the budget covers its estimate (or holds the whole burst,
 * so an estimate above the burst is not refused for ever). It is charged its worst-case
 * estimate — deliberately more than most compiles take — or what it took where that was more,
 * so the budget can go below zero and then refuses until it has refilled.
 */
export function createCompileBudget(options: CompileBudgetOptions = {}): CompileBudget {
  const rate = options.msPerSecond ?? DEFAULT_JIT_COMPILE_BUDGET_MS_PER_SECOND;
  const burst = options.burstMs ?? DEFAULT_JIT_COMPILE_BURST_MS;
  for (const [name, value] of [
    ['msPerSecond', rate],
    ['burstMs', burst],
  ] as const) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new TypeError(`createCompileBudget: ${name} must be a number > 0, got ${value}`);
    }
  }
  const clock = options.clock ?? (() => performance.now());
  let level = burst;
  let at = clock();
  const totals: JitCompileStats = { compiles: 0, compileMs: 0, deferred: 0 };
  const refill = (now: number) => {
    level = Math.min(burst, level + ((now - at) * rate) / 1_000);
    at = now;
  };
  return {
    attempt(estimateMs, compile) {
      refill(clock());
      if (level < Math.min(estimateMs, burst)) {
        totals.deferred += 1;
        return undefined;
      }
      const started = at;
      try {
        return { value: compile() };
      } finally {
        // Nothing refills while the compile holds the event loop: the budget resumes after it.
        at = clock();
        const took = at - started;
        level -= Math.max(estimateMs, took);
        totals.compiles += 1;
        totals.compileMs += took;
      }
    },
    stats: () => ({ ...totals }),
  };
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
 * JavaScript that resolves and serialises its fields without graphql-js's generic walk — only
 * an operation graphql-jit answers exactly as graphql-js does, and whose compile is bounded:
 * at most `maxCompileFields` expanded fields (measured in linear time first), no introspection,
 * no directives ({@link JitPlanReason}). Everything else runs on graphql-js, as does an
 * operation whose variables graphql-jit's coercion refuses after graphql-js accepted them, so
 * the answer never depends on the engine (test/security/graphql-fuzz.test.ts compares both).
 */
export function createJitGateway(
  schema: GraphQLSchema,
  options: JitGatewayOptions = {},
): JitGateway {
  const max = options.maxCompiledOperations ?? DEFAULT_MAX_COMPILED_OPERATIONS;
  const maxCompileFields = options.maxCompileFields ?? DEFAULT_JIT_MAX_COMPILE_FIELDS;
  for (const [name, value] of [
    ['maxCompiledOperations', max],
    ['maxCompileFields', maxCompileFields],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new TypeError(`createJitGateway: ${name} must be an integer ≥ 1, got ${value}`);
    }
  }
  const plans = new LRUCache<string, Plan>({ max });
  // Compiling costs several times a graphql-js execution, so a flood of one-off documents
  // must not buy a compile each: an operation is compiled on its second use, when it has
  // shown it repeats (the documents a front-end sends do, at once).
  const compileAfterUses = options.compileAfterUses ?? DEFAULT_COMPILE_AFTER_USES;
  // Per operation not planned yet: its uses so far and, once measured, its expanded fields (an
  // operation waiting for the compile budget is not measured again on every use).
  const uses = new LRUCache<string, { count: number; fields?: number }>({ max: max * 4 });
  const budget = options.compileBudget ?? createCompileBudget();

  /** Why graphql-jit must not compile this operation, if it must not; else its size. */
  function unfit(
    document: DocumentNode,
    operation: OperationDefinitionNode,
  ): JitPlanReason | number {
    const shape = analyzeOperation(document, operation);
    if (shape.expandedFields > maxCompileFields) return 'expanded-size';
    if (shape.introspection) return 'introspection';
    if (shape.directives > 0) return 'directives';
    return shape.expandedFields;
  }

  function settle(
    key: string,
    operationName: string | undefined,
    plan: Plan,
    reason: JitPlanReason,
  ) {
    plans.set(key, plan);
    options.onCompile?.({ operationName, compiled: plan !== 'graphql-js', reason });
  }

  function planFor(key: string, document: DocumentNode, operation: OperationDefinitionNode): Plan {
    let plan = plans.get(key);
    if (plan === undefined) {
      const use = uses.get(key) ?? { count: 0 };
      use.count += 1;
      if (use.count < compileAfterUses) {
        uses.set(key, use);
        return 'graphql-js';
      }
      const operationName = operation.name?.value;
      // Measured before compiling, in linear time: the compiler's own walk is what must not run.
      const fit = use.fields ?? unfit(document, operation);
      if (typeof fit === 'string') {
        uses.delete(key);
        settle(key, operationName, 'graphql-js', fit);
        return 'graphql-js';
      }
      const attempt = budget.attempt(fit * DEFAULT_JIT_COMPILE_MS_PER_FIELD, () => {
        try {
          return compileQuery(schema, document, operationName);
        } catch {
          // A compiler limitation, not the client's mistake: graphql-js answers instead.
          return undefined;
        }
      });
      if (!attempt) {
        // Compiled on a later use, once the budget has refilled; graphql-js answers this one.
        use.fields = fit;
        uses.set(key, use);
        return 'graphql-js';
      }
      uses.delete(key);
      const compiled: CompiledQuery | ExecutionResult | undefined = attempt.value;
      plan = compiled && isCompiledQuery(compiled) ? compiled : 'graphql-js';
      settle(key, operationName, plan, plan === 'graphql-js' ? 'compiler-error' : 'compiled');
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
          const graphqlJs = () =>
            execute({
              schema,
              document: request.document,
              contextValue: request.context,
              variableValues: variables,
              operationName: request.request.operationName,
            });
          // Apollo calls the executor even when the document has no operation by the name the
          // client gave (e.g. ""); graphql-js then words the error Apollo expects to see.
          const operation = request.operation as OperationDefinitionNode | undefined;
          if (!operation) return graphqlJs();
          // The NUL cannot occur in a hash, so no two (hash, name) pairs share a key.
          const key = `${request.queryHash}\u0000${operation.name?.value ?? ''}`;
          const plan = planFor(key, request.document, operation);
          if (plan === 'graphql-js') return graphqlJs();
          const errors = variableErrors(schema, operation, variables);
          if (errors) return { errors };
          const result = await plan.query(undefined, request.context, variables);
          // Only graphql-jit's own variable coercion answers without `data` (before any resolver
          // runs): it refused what graphql-js accepted, so graphql-js answers, from now on.
          if (result.data === undefined) {
            settle(key, operation.name?.value, 'graphql-js', 'variables');
            return graphqlJs();
          }
          return normalized(result);
        },
      };
    },
    async stop() {
      plans.clear();
      uses.clear();
    },
  };
}
