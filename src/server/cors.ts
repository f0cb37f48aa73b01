import type { IncomingMessage } from 'node:http';
import type { CorsConfig } from '../config/schema.js';
import type { TenantRegistry } from '../tenancy/registry.js';
import type { Tenant } from '../tenancy/tenant.js';

/**
 * CORS for the GraphQL endpoints, global and per tenant.
 *
 * Why not the `cors` middleware: its decision is one step, before the request is handled,
 * while here an actual request's answer depends on the tenant of its token, known only after
 * admission, and answers written before Apollo (401, 429, 413, …) need the same headers.
 *
 * Rules:
 * - A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) carries no token,
 *   so it is answered before auth: allowed when the origin is a global one or one of *any*
 *   tenant's (of the tenant named by the path or host, when one is). A disallowed origin gets
 *   no CORS headers.
 * - An actual answer once the token's tenant is known allows the global origins and that
 *   tenant's own; another tenant's front-end cannot read it.
 * - A refusal before any tenant is known (401, 404, 406, a tenant mismatch) allows what a
 *   preflight allows: its body names no tenant and holds no data, and a tenant's front-end
 *   must be able to read "token expired" to refresh it.
 * - The allowed origin is echoed (never `*`), so answers vary by `Origin`: callers send
 *   `Vary: Origin` on every answer of these endpoints, allowed or not.
 */
export interface CorsOptions extends CorsConfig {
  /** The served tenants; each one's `corsOrigins` are allowed for its requests. */
  tenants: Pick<TenantRegistry, 'get' | 'list' | 'onChange'>;
}

export interface CorsPolicy {
  /**
   * The headers of a preflight's 204, or `undefined` when the origin is not allowed.
   * `hint` is the tenant the path or host names, if any (not verified: a preflight has no token).
   */
  preflight(origin: string, hint: string | undefined): Record<string, string> | undefined;
  /**
   * The CORS headers of an actual answer (none when the origin is not allowed). `tenant` is the
   * verified tenant, or `undefined` when the request was refused before it was known.
   */
  response(origin: string | undefined, tenant: Tenant | undefined): Record<string, string>;
}

/** A CORS preflight, rather than a plain OPTIONS request (which is routed like any other). */
export function isPreflight(req: Pick<IncomingMessage, 'method' | 'headers'>): boolean {
  return (
    req.method === 'OPTIONS' &&
    typeof req.headers.origin === 'string' &&
    typeof req.headers['access-control-request-method'] === 'string'
  );
}

/** Tests an origin against exact origins and `*` patterns (see CORS_ORIGIN_PATTERN). */
export type OriginMatcher = (origin: string) => boolean;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A pattern such as `https://app-*.example.com` or `http://localhost:*` as a RegExp. */
function patternRegExp(pattern: string): RegExp {
  const port = /:(\*|[0-9]+)$/.exec(pattern);
  const hostPart = port ? pattern.slice(0, port.index) : pattern;
  // `*` in the host: part of one DNS label, never a dot. `:*`: any port, or none (the default).
  const host = hostPart.split('*').map(escapeRegExp).join('[a-z0-9-]+');
  const portPart = port === null ? '' : port[1] === '*' ? '(?::[0-9]{1,5})?' : `:${port[1]}`;
  return new RegExp(`^${host}${portPart}$`);
}

/**
 * Compiles a list of allowed origins: exact ones are one Set lookup, patterns one RegExp each,
 * `*` matches any origin. The literal origin `null` (sandboxed frames, `file:`) never matches.
 */
export function compileOrigins(origins: readonly string[]): OriginMatcher {
  if (origins.includes('*')) return (origin) => origin !== 'null';
  const exact = new Set(origins.filter((o) => !o.includes('*')));
  const patterns = origins.filter((o) => o.includes('*')).map(patternRegExp);
  if (patterns.length === 0) return (origin) => exact.has(origin);
  return (origin) => exact.has(origin) || patterns.some((p) => p.test(origin));
}

const NEVER: OriginMatcher = () => false;

export function createCorsPolicy(options: CorsOptions): CorsPolicy {
  const global = compileOrigins(options.origins);
  // Tenant objects are replaced on every change, so a compiled matcher never goes stale.
  const byTenant = new WeakMap<Tenant, OriginMatcher>();
  const tenantMatcher = (tenant: Tenant): OriginMatcher => {
    let matcher = byTenant.get(tenant);
    if (matcher === undefined) {
      matcher = tenant.corsOrigins.length === 0 ? NEVER : compileOrigins(tenant.corsOrigins);
      byTenant.set(tenant, matcher);
    }
    return matcher;
  };
  // The union of every tenant's origins, rebuilt on the first use after a tenant change.
  let anyTenant: OriginMatcher | undefined;
  options.tenants.onChange(() => {
    anyTenant = undefined;
  });
  const anyTenantMatcher = (): OriginMatcher => {
    anyTenant ??= compileOrigins(options.tenants.list().flatMap((t) => t.corsOrigins));
    return anyTenant;
  };

  const common: Record<string, string> = options.credentials
    ? { 'access-control-allow-credentials': 'true' }
    : {};
  const preflightHeaders = {
    ...common,
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': options.allowedHeaders.join(', '),
    'access-control-max-age': String(options.maxAgeSeconds),
  };
  const exposed =
    options.exposedHeaders.length > 0
      ? { 'access-control-expose-headers': options.exposedHeaders.join(', ') }
      : {};

  /** Allowed before the tenant is verified: global, or the hinted tenant's, or any tenant's. */
  function allowedUnverified(origin: string, hint: string | undefined): boolean {
    if (global(origin)) return true;
    if (hint === undefined) return anyTenantMatcher()(origin);
    const hinted = options.tenants.get(hint);
    return hinted !== undefined && tenantMatcher(hinted)(origin);
  }

  return {
    preflight(origin, hint) {
      if (!allowedUnverified(origin, hint)) return undefined;
      return { 'access-control-allow-origin': origin, ...preflightHeaders };
    },

    response(origin, tenant) {
      if (origin === undefined) return {};
      const allowed =
        tenant === undefined
          ? allowedUnverified(origin, undefined)
          : global(origin) || tenantMatcher(tenant)(origin);
      return allowed ? { 'access-control-allow-origin': origin, ...common, ...exposed } : {};
    },
  };
}
