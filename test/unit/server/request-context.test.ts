import { Writable } from 'node:stream';
import { ApolloServer } from '@apollo/server';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANS } from '../../../src/config/schema.js';
import type { GatewayContext } from '../../../src/graphql/context.js';
import { createDeadline } from '../../../src/limits/deadline.js';
import {
  type AdmittedRequest,
  type ContextDependencies,
  createRequestContext,
} from '../../../src/server/context.js';
import type { Tenant } from '../../../src/tenancy/tenant.js';

// The context's parts are built on first read. Nothing here reads a table or calls a backend:
// the dependencies a part would call are never called, so they are bare objects.
function setup() {
  const logger = pino({ level: 'info' }, new Writable({ write: (_c, _e, done) => done() }));
  const children: unknown[] = [];
  const child = logger.child.bind(logger);
  logger.child = ((bindings, options) => {
    children.push(bindings);
    return child(bindings, options);
  }) as typeof logger.child;
  const deps = {
    logger,
    dataSource: {},
    predictor: {},
    bindings: {},
    tenantChecks: {},
    cacheTtlSeconds: 0,
    modelReady: () => Promise.resolve(true),
  } as unknown as ContextDependencies;
  const tenant = { id: 'ctx-acme', limits: DEFAULT_PLANS.pro } as unknown as Tenant;
  const admitted = {
    tenant,
    principal: { tenant: tenant.id },
    admission: { release: () => undefined },
  } as unknown as AdmittedRequest;
  const context = () => createRequestContext(deps, admitted, 'req-1', createDeadline(1_000));
  return { children, context, deps, admitted };
}

const seen: unknown[] = [];
const server = new ApolloServer<GatewayContext>({
  typeDefs: 'type Query { plain: String, parts: Boolean, ready: Boolean }',
  resolvers: {
    Query: {
      plain: () => 'plain',
      parts: (_: unknown, __: unknown, ctx: GatewayContext) => {
        seen.push(ctx.data, ctx.data, ctx.services, ctx.predictions, ctx.log, ctx.log);
        return true;
      },
      // Destructured, as resolvers do: no `this`.
      ready: (_: unknown, __: unknown, { modelReady }: GatewayContext) => modelReady('b', 'm'),
    },
  },
});

describe('createRequestContext', () => {
  it('builds no part a request does not read', async () => {
    const { children, context } = setup();
    const result = await server.executeOperation(
      { query: '{ plain }' },
      { contextValue: context() },
    );
    expect(result.body).toMatchObject({ singleResult: { data: { plain: 'plain' } } });
    expect(children).toEqual([]);
  });

  it('builds each part once, shared by Apollo’s clone of the context and the original', async () => {
    const { children, context } = setup();
    seen.length = 0;
    const original = context();
    const result = await server.executeOperation(
      { query: '{ parts ready }' },
      { contextValue: original },
    );
    expect(result.body).toMatchObject({ singleResult: { data: { parts: true, ready: true } } });
    const [data, dataAgain, services, predictions, log, logAgain] = seen;
    expect(dataAgain).toBe(data);
    expect(logAgain).toBe(log);
    // Apollo's resolvers saw a clone; the original hands out the very same parts.
    expect(original.data).toBe(data);
    expect(original.services).toBe(services);
    expect(original.predictions).toBe(predictions);
    expect(original.log).toBe(log);
    expect(original.modelReady).toBe(original.modelReady);
    // One logger child for the request (predictions use it too), bound to it and its tenant.
    expect(children).toEqual([{ requestId: 'req-1', tenant: 'ctx-acme' }]);
  });

  it('keeps its dependencies and the admission out of resolvers’ reach', async () => {
    const { context, deps, admitted } = setup();
    const original = context();
    await server.executeOperation({ query: '{ parts }' }, { contextValue: original });
    // Nothing a resolver can walk to from the context is the gateway's dependencies (every
    // tenant's registry, the shared pools) or the request's admission.
    const reachable: unknown[] = [];
    const walk = (value: unknown, depth: number) => {
      if (value === null || typeof value !== 'object' || depth > 1) return;
      for (const member of Object.values(value)) {
        reachable.push(member);
        walk(member, depth + 1);
      }
    };
    walk(original, 0);
    expect(reachable.length).toBeGreaterThan(5);
    expect(reachable).not.toContain(deps);
    expect(reachable).not.toContain(admitted);
    expect(reachable).not.toContain(admitted.admission);
  });
});
