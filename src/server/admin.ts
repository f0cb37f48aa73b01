import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenVerifier } from '../auth/verify-token.js';
import { GatewayError } from '../errors.js';
import { isStoreError } from '../store/errors.js';
import type { Logger } from '../telemetry/logger.js';
import { assertTenantIdInput, type TenantConfigAdmin } from '../tenancy/tenant-admin.js';
import type { TenantRegistry } from '../tenancy/registry.js';
import type { Tenant } from '../tenancy/tenant.js';
import { parseBody, readBody } from './body.js';
import {
  parseTrustedDocuments,
  registerTrustedDocuments,
  removeTrustedDocuments,
} from './persisted-queries.js';

/**
 * The admin endpoint, mounted at `/admin/*`:
 *
 *   GET    /admin/tenants                      served tenants and stored run-time records
 *   GET    /admin/tenants/{id}                 one tenant: as served here, and its record
 *   PUT    /admin/tenants/{id}                 create or replace (body: a tenant config)
 *   POST   /admin/tenants/{id}/suspend|resume
 *   DELETE /admin/tenants/{id}                 stop serving it (tombstone)
 *   POST   /admin/tenants/{id}/reset           drop the record: the config file applies again
 *   POST   /admin/tenants/{id}/documents       register trusted documents (array, or manifest)
 *   DELETE /admin/tenants/{id}/documents       body { hashes: [...] }
 *
 * Who may call it: a verified token whose tenant claim is the configured operator tenant
 * (`admin.tenant`) AND that carries the admin scope (`admin.scope`, default `atrium:admin`).
 * A scope alone is not enough: in a multi-tenant identity provider, tenant administrators may
 * be able to put arbitrary scopes into their own users' tokens, and a scope that any tenant
 * can mint would let one tenant suspend another. The operator tenant is not a served tenant
 * (puts of its id are refused), so no tenant's users carry its claim.
 *
 * Every input mistake (an id that is not a tenant id, a body that is not JSON or not the
 * expected shape, an unknown action) is a coded 4xx; the validation itself is the tenant
 * admin's (`tenancy/tenant-admin.ts`), shared with `npm run tenants`.
 */
export interface AdminRouteOptions {
  verifier: Pick<TokenVerifier, 'verifyAuthorizationHeader'>;
  tenants: TenantConfigAdmin;
  registry: Pick<TenantRegistry, 'get' | 'list'>;
  /** The operator tenant id tokens must name. */
  adminTenant: string;
  /** The scope tokens must carry. */
  scope: string;
  bodyLimitBytes: number;
  logger: Logger;
}

const TENANTS_PATH = /^\/admin\/tenants(?:\/([^/]+)(?:\/([a-z]+))?)?\/?$/;

function notFound(what: string): GatewayError {
  return new GatewayError('BAD_USER_INPUT', `${what} not found.`, {
    status: 404,
    extensions: { reason: 'NOT_FOUND' },
  });
}

function methodNotAllowed(allowed: string): GatewayError {
  return new GatewayError('BAD_USER_INPUT', `Method not allowed; use ${allowed}.`, {
    status: 405,
    headers: { allow: allowed },
    extensions: { reason: 'METHOD_NOT_ALLOWED' },
  });
}

/** A served tenant as operators want to see it (no secrets: data URLs are left out). */
export function tenantSummary(tenant: Tenant): Record<string, unknown> {
  return {
    id: tenant.id,
    displayName: tenant.displayName,
    plan: tenant.plan,
    status: tenant.status,
    dataStrategy: tenant.data.strategy,
    models: Object.keys(tenant.models),
    features: [...tenant.features],
    trustedDocuments: tenant.trustedDocuments,
    corsOrigins: tenant.corsOrigins,
    limits: tenant.limits,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** The `/admin/*` route handler; see {@link AdminRouteOptions} for who may call it. */
export function createAdminRoute(options: AdminRouteOptions) {
  const { tenants, registry } = options;

  async function authorize(req: IncomingMessage): Promise<string> {
    const principal = await options.verifier.verifyAuthorizationHeader(req.headers.authorization);
    if (principal.tenantId !== options.adminTenant || !principal.scopes.includes(options.scope)) {
      throw new GatewayError('FORBIDDEN', 'This endpoint needs an operator token.', {
        extensions: { reason: 'ADMIN_REQUIRED' },
      });
    }
    return principal.subject;
  }

  async function jsonBody(req: IncomingMessage): Promise<unknown> {
    const body = parseBody(
      await readBody(req, options.bodyLimitBytes),
      req.headers['content-type'] ?? 'application/json',
    );
    if (typeof body === 'string' || body === undefined) {
      throw new GatewayError('BAD_USER_INPUT', 'Send a JSON body (application/json).', {
        status: 415,
        extensions: { reason: 'UNSUPPORTED_MEDIA_TYPE' },
      });
    }
    return body;
  }

  async function tenantAction(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    action: string | undefined,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (action === undefined) {
      switch (method) {
        case 'GET': {
          const served = registry.get(id);
          const stored = await tenants.get(id);
          if (served === undefined && stored === undefined) throw notFound(`Tenant ${id}`);
          return send(res, 200, {
            served: served === undefined ? null : tenantSummary(served),
            stored: stored ?? null,
          });
        }
        case 'PUT': {
          const body = await jsonBody(req);
          if (!isPlainObject(body)) {
            throw new GatewayError('BAD_USER_INPUT', 'The body must be one tenant config object.', {
              extensions: { reason: 'INVALID_TENANT_CONFIG' },
            });
          }
          const given = body.id;
          if (given !== undefined && given !== id) {
            throw new GatewayError('BAD_USER_INPUT', `The body's id must be ${id}.`, {
              extensions: { reason: 'ID_MISMATCH' },
            });
          }
          const config = await tenants.put({ ...body, id });
          return send(res, 200, { tenant: config });
        }
        case 'DELETE':
          await tenants.delete(id);
          return send(res, 200, { deleted: id });
        default:
          throw methodNotAllowed('GET, PUT, DELETE');
      }
    }
    switch (action) {
      case 'suspend':
      case 'resume': {
        if (method !== 'POST') throw methodNotAllowed('POST');
        const record = await tenants.setStatus(id, action === 'suspend' ? 'suspended' : 'active');
        return send(res, 200, { stored: record });
      }
      case 'reset': {
        if (method !== 'POST') throw methodNotAllowed('POST');
        return send(res, 200, { reset: await tenants.reset(id) });
      }
      case 'documents': {
        if (method === 'POST') {
          const documents = parseTrustedDocuments(await jsonBody(req));
          const hashes = await registerTrustedDocuments(tenants, id, documents);
          return send(res, 200, { tenant: id, hashes });
        }
        if (method === 'DELETE') {
          const body = await jsonBody(req);
          if (!isPlainObject(body) || !Array.isArray(body.hashes) || body.hashes.length === 0) {
            throw new GatewayError('BAD_USER_INPUT', 'Send { "hashes": ["<sha256>", …] }.', {
              extensions: { reason: 'BAD_DOCUMENTS' },
            });
          }
          const removed = await removeTrustedDocuments(tenants, id, body.hashes);
          return send(res, 200, { tenant: id, removed });
        }
        throw methodNotAllowed('POST, DELETE');
      }
      default:
        throw notFound(`/admin/tenants/${id}/${action}`);
    }
  }

  return async function adminRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const subject = await authorize(req);
      const path = new URL(req.url ?? '/', 'http://gateway.invalid').pathname;
      const match = TENANTS_PATH.exec(path);
      if (!match) throw notFound(path);
      const [, rawId, action] = match;
      if (rawId === undefined) {
        if (req.method !== 'GET') throw methodNotAllowed('GET');
        return send(res, 200, {
          served: registry.list().map(tenantSummary),
          stored: await tenants.list(),
        });
      }
      let id: string;
      try {
        id = decodeURIComponent(rawId);
      } catch {
        throw notFound(path);
      }
      assertTenantIdInput(id);
      if (req.method !== 'GET') {
        options.logger.info({ subject, method: req.method, path }, 'admin action');
      }
      await tenantAction(req, res, id, action);
    } catch (error) {
      if (isStoreError(error)) {
        options.logger.warn(
          { err: error.message },
          'admin action: store or control database unavailable',
        );
        throw new GatewayError(
          'BACKEND_UNAVAILABLE',
          'The shared store or the control database is unavailable; retry shortly.',
          { status: 503, headers: { 'Retry-After': '1' }, extensions: { reason: 'STORE' } },
        );
      }
      throw error;
    }
  };
}
