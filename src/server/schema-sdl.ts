import type { IncomingMessage, ServerResponse } from 'node:http';
import { type GraphQLSchema, printSchema } from 'graphql';
import { GatewayError } from '../errors.js';
import { introspectionRefused } from './operation-limits.js';
import { tenantHintFromHost } from '../tenancy/resolve-tenant.js';
import type { Tenant } from '../tenancy/tenant.js';
import { admitRequest, type ContextDependencies } from './context.js';

export interface SchemaSdlRouteOptions extends Pick<
  ContextDependencies,
  'verifier' | 'registry' | 'admission'
> {
  /** The caller's schema variant. */
  schemaFor(tenant: Tenant): GraphQLSchema;
  /** As for GraphQL requests: a subdomain of it names the tenant, and must match the token. */
  baseDomain?: string | undefined;
}

/**
 * GET /schema.graphql: the caller's schema variant as SDL, for codegen and other client tools
 * that prefer a file to an introspection query. Same gate as a GraphQL request (token, tenant,
 * rate and concurrency limits), and refused where the tenant's plan turns introspection off
 * (400 OPERATION_LIMIT, `limit: "introspection"`, like an introspection query).
 * The SDL is printed from the variant, so hidden fields and the `@feature` directive are not in
 * it.
 */
export function createSchemaSdlRoute(options: SchemaSdlRouteOptions) {
  const printed = new WeakMap<GraphQLSchema, string>();

  return async function schemaSdl(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `${req.method ?? 'This method'} is not allowed here.`,
        {
          status: 405,
          headers: { allow: 'GET, HEAD' },
          extensions: { reason: 'METHOD_NOT_ALLOWED' },
        },
      );
    }
    const admitted = await admitRequest(options, {
      authorization: req.headers.authorization,
      hints: [tenantHintFromHost(req.headers.host, options.baseDomain)],
    });
    try {
      // The schema by another route: refused as introspection is.
      if (!admitted.tenant.limits.introspection) throw introspectionRefused();
      const schema = options.schemaFor(admitted.tenant);
      let sdl = printed.get(schema);
      if (sdl === undefined) {
        sdl = `${printSchema(schema)}\n`;
        printed.set(schema, sdl);
      }
      res.writeHead(200, {
        ...admitted.admission.headers,
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(sdl)),
        'cache-control': 'private, no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : sdl);
    } finally {
      admitted.admission.release();
    }
  };
}
