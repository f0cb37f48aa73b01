import type { IdentitySigner } from '../../auth/identity.js';
import type { Principal } from '../../auth/principal.js';
import type { ServiceClients, ServiceRequest } from '../../backends/http/service-clients.js';
import type { SecretRef, ServiceConfig, TenantServiceConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import type { LoaderRegistry } from '../../loaders/registry.js';
import { originHeaders } from '../../telemetry/tracing.js';
import { bindingName, type HttpBinding, type ShapeField, type TemplatePart } from '../bindings.js';
import { ROW } from '../sql/tenant-data.js';
import { checkAnswer } from './answer-shape.js';
import type { ConcurrencyGates } from './gates.js';

export interface TenantServicesOptions {
  tenant: { id: string; services: Readonly<Record<string, TenantServiceConfig>> };
  principal: Principal;
  /** The caller's Authorization header, for services with `identity: forward`. */
  authorization?: string | undefined;
  requestId: string;
  /** The W3C trace context to continue upstream. */
  traceparent?: string | undefined;
  loaders: LoaderRegistry;
  clients: Pick<ServiceClients, 'call'>;
  services: Readonly<Record<string, ServiceConfig>>;
  signer: IdentitySigner | undefined;
  /** Reads a secret reference (cached by the caller). */
  secret: (ref: SecretRef) => string;
  gates: ConcurrencyGates;
}

/** The tenant services of one request: every `@http` field, batched or deduplicated. */
export interface TenantServices {
  resolve(
    binding: HttpBinding,
    parent: unknown,
    args: Readonly<Record<string, unknown>>,
  ): Promise<unknown>;
}

type Values = (from: 'parent' | 'args', name: string) => unknown;

function valueOf(parent: unknown, args: Readonly<Record<string, unknown>>): Values {
  return (from, name) => {
    if (from === 'args') return args[name];
    const record = parent as Record<string | symbol, unknown> | null | undefined;
    if (!record) return undefined;
    if (name in record) return record[name];
    return (record[ROW] as Record<string, unknown> | undefined)?.[name];
  };
}

function scalarText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => scalarText(v) ?? '').join(',');
  return JSON.stringify(value);
}

/** A template with its placeholders URL-encoded; undefined when one has no value. */
function render(parts: readonly TemplatePart[], values: Values): string | undefined {
  let out = '';
  for (const part of parts) {
    if ('text' in part) out += part.text;
    else {
      const text = scalarText(values(part.from, part.name));
      if (text === undefined) return undefined;
      out += encodeURIComponent(text);
    }
  }
  return out;
}

/** A JSON body template: a string that is one placeholder keeps the value as it is. */
function renderBody(template: unknown, values: Values): unknown {
  if (typeof template === 'string') {
    const whole = /^\{(parent|args)\.([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(template);
    if (whole) return values(whole[1] as 'parent' | 'args', whole[2] ?? '') ?? null;
    return template.replace(
      /\{(parent|args)\.([A-Za-z_][A-Za-z0-9_]*)\}/g,
      (_m, from: 'parent' | 'args', name: string) => scalarText(values(from, name)) ?? '',
    );
  }
  if (Array.isArray(template)) return template.map((t) => renderBody(t, values));
  if (typeof template === 'object' && template !== null) {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, renderBody(v, values)]));
  }
  return template;
}

function selectIn(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    current = Object.hasOwn(current, key) ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}

function notConfigured(service: string): GatewayError {
  return new GatewayError(
    'FORBIDDEN',
    `The ${service} service is not configured for this tenant.`,
    {
      extensions: { service },
    },
  );
}

/** The shape of one item of a batched answer: the field's element type, never null. */
function itemShape(field: ShapeField): ShapeField {
  return { name: field.name, nonNull: true, list: false, itemNonNull: false, shape: field.shape };
}

export function createTenantServices(options: TenantServicesOptions): TenantServices {
  const { tenant, principal, loaders, clients, services, signer, secret, gates } = options;

  async function headersFor(name: string, config: ServiceConfig): Promise<Record<string, string>> {
    const headers = originHeaders([options]);
    const own = tenant.services[name]?.headers ?? {};
    for (const [header, ref] of Object.entries({ ...config.headers, ...own })) {
      headers[header.toLowerCase()] = secret(ref);
    }
    if (config.identity === 'signed') {
      if (!signer) throw new GatewayError('INTERNAL_SERVER_ERROR', 'No identity signer');
      const token = await signer.sign({
        tenant: tenant.id,
        subject: principal.subject,
        scopes: principal.scopes,
        audience: config.audience ?? name,
      });
      headers.authorization = `Bearer ${token}`;
    } else if (config.identity === 'forward' && options.authorization) {
      headers.authorization = options.authorization;
    }
    return headers;
  }

  /** Where the tenant's calls to `name` go: its own URL, else the service's. */
  function endpointOf(name: string): { config: ServiceConfig; origin: string; base: string } {
    const config = Object.hasOwn(services, name) ? services[name] : undefined;
    const url = tenant.services[name]?.url ?? config?.url;
    if (!config || !url) throw notConfigured(name);
    const parsed = new URL(url);
    return { config, origin: parsed.origin, base: parsed.pathname.replace(/\/+$/, '') };
  }

  async function send(
    binding: HttpBinding,
    request: Omit<ServiceRequest, 'headers'>,
    validate: (value: unknown) => string | undefined,
  ): Promise<unknown> {
    const { config, origin, base } = endpointOf(binding.service);
    const headers = await headersFor(binding.service, config);
    return gates.run(`${tenant.id}\u0000${binding.service}`, config.maxConcurrent, () =>
      clients.call(
        binding.service,
        origin,
        { ...request, path: `${base}${request.path}`, headers },
        {
          tenant: tenant.id,
          validate: (answer) => validate(selectIn(answer, binding.select)),
        },
      ),
    );
  }

  function queryString(binding: HttpBinding, values: Values, extra?: [string, string]): string {
    const pairs: string[] = [];
    for (const { name, value } of binding.query) {
      const text = render(value, values);
      if (text !== undefined) pairs.push(`${encodeURIComponent(name)}=${text}`);
    }
    if (extra) pairs.push(`${encodeURIComponent(extra[0])}=${extra[1]}`);
    return pairs.length > 0 ? `?${pairs.join('&')}` : '';
  }

  function batched(binding: HttpBinding, args: Readonly<Record<string, unknown>>) {
    const batch = binding.batch;
    if (!batch) throw new TypeError('not a batched binding');
    const argsOnly = valueOf(undefined, args);
    return loaders.get<string, unknown>(
      `http:${bindingName(binding)}(${JSON.stringify(args)})`,
      async (keys) => {
        const path = render(binding.path, argsOnly);
        if (path === undefined) {
          return keys.map(
            () => new GatewayError('BAD_USER_INPUT', `${binding.field}: an argument is missing`),
          );
        }
        const encoded = keys.map((k) => encodeURIComponent(k)).join(',');
        const request =
          binding.method === 'GET'
            ? {
                method: 'GET' as const,
                path: `${path}${queryString(binding, argsOnly, [batch.param, encoded])}`,
              }
            : {
                method: 'POST' as const,
                path: `${path}${queryString(binding, argsOnly)}`,
                body: JSON.stringify({
                  ...((renderBody(binding.body, argsOnly) as Record<string, unknown> | undefined) ??
                    {}),
                  [batch.param]: keys,
                }),
              };
        const item = itemShape(binding.answer);
        try {
          const answer = await send(binding, request, (value) => {
            if (!Array.isArray(value)) return 'the batched answer is not a list';
            for (const [i, entry] of value.entries()) {
              const problem = checkAnswer(entry, item, `[${i}]`);
              if (problem) return problem;
              const key = (entry as Record<string, unknown>)[batch.key];
              if (typeof key !== 'string' && typeof key !== 'number') {
                return `[${i}].${batch.key} is not a key`;
              }
            }
            return undefined;
          });
          const items = selectIn(answer, binding.select) as Record<string, unknown>[];
          const grouped = new Map<string, Record<string, unknown>[]>();
          for (const entry of items) {
            const key = String(entry[batch.key]);
            const list = grouped.get(key);
            if (list) list.push(entry);
            else grouped.set(key, [entry]);
          }
          return keys.map((key) => {
            const list = grouped.get(key) ?? [];
            return binding.answer.list ? list : (list[0] ?? null);
          });
        } catch (error) {
          return keys.map(() => (error instanceof Error ? error : new Error(String(error))));
        }
      },
    );
  }

  function single(binding: HttpBinding) {
    return loaders.get<string, unknown>(`http:${bindingName(binding)}`, (requests) =>
      Promise.all(
        requests.map(async (key) => {
          const request = JSON.parse(key) as Omit<ServiceRequest, 'headers'>;
          try {
            const answer = await send(binding, request, (value) =>
              checkAnswer(value, binding.answer, ''),
            );
            return selectIn(answer, binding.select) ?? null;
          } catch (error) {
            return error instanceof Error ? error : new Error(String(error));
          }
        }),
      ),
    );
  }

  return {
    async resolve(binding, parent, args) {
      if (binding.batch) {
        const key = scalarText(valueOf(parent, args)('parent', binding.batch.by));
        if (key === undefined) return binding.answer.list ? [] : null;
        return batched(binding, args).load(key);
      }
      const values = valueOf(parent, args);
      const path = render(binding.path, values);
      if (path === undefined) return binding.answer.list ? [] : null;
      const request =
        binding.method === 'GET'
          ? { method: 'GET' as const, path: `${path}${queryString(binding, values)}` }
          : {
              method: 'POST' as const,
              path: `${path}${queryString(binding, values)}`,
              body: JSON.stringify(renderBody(binding.body, values) ?? {}),
            };
      // The same rendered request is made once per request (DataLoader's cache).
      return single(binding).load(JSON.stringify(request));
    },
  };
}
