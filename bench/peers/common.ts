/**
 * What the three peer servers of the `peers` scenario share: the work Atrium does for the
 * bench's queries, written once so each peer file holds only its framework's idiom.
 *
 * - Configuration: the very config file the scenario gives Atrium (`PEER_CONFIG`): the same
 *   static ES256 public key, issuer, audience, tenants and model settings.
 * - Authentication: `Authorization: Bearer <JWT>` verified with `jose` against a local JWKS of
 *   that key (ES256 only, issuer, audience, expiry, 30 s clock tolerance), then remembered by
 *   SHA-256 of the token until it expires (10,000 entries) — as Atrium does with its
 *   verified-token cache, so both pay one signature check per token, not per request.
 * - Tenancy: the tenant is the verified `tenant` (or `https://atrium.dev/tenant`) claim, and
 *   must be one of the config's tenants; `customer`/`customers` need the `read` scope.
 * - Isolation: the bench tenant is a `schema` tenant, whose isolation in Atrium is its own
 *   PostgreSQL schema (`tenant_<id>`, `-` → `_`): every statement names the tenant's schema,
 *   derived from the verified tenant and nothing else. The statements are the ones Atrium
 *   generates from the demo SDL, character for character (same select lists, `float8` casts,
 *   `= ANY($1)` batches, the ranked window for `orders(first:)`), on a pool configured as
 *   Atrium's (10 connections, `statement_timeout` 5 s as a start-up parameter).
 * - Predictions: the tenant's `churn` model on the same model server, Open Inference Protocol v2
 *   JSON (`POST /v2/models/<model>/versions/<v>/infer`, FP32 `[rows, features]`), the features
 *   in the config's order read off the customer row (booleans as 0/1), label from thresholds.
 *
 * The batch functions here are per request: Apollo and Yoga wrap them in DataLoaders built in
 * their `context` function (`createRequestLoaders`); mercurius calls them from its `loaders`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import DataLoader from 'dataloader';
import { GraphQLScalarType } from 'graphql';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';

/** The subset of Atrium's demo SDL the bench's queries use, without Atrium's directives. */
export const typeDefs = /* GraphQL */ `
  scalar DateTime

  type Query {
    viewer: Viewer!
    customer(id: ID!): Customer
    customers(first: Int = 20, after: String): CustomerConnection!
  }

  type Viewer {
    subject: String!
    scopes: [String!]!
    tenant: Tenant!
  }

  type Tenant {
    id: ID!
    displayName: String!
  }

  type Customer {
    id: ID!
    name: String!
    email: String!
    segment: String!
    country: String!
    createdAt: DateTime!
    lifetimeValue: Float!
    tenureMonths: Int!
    monthlySpend: Float!
    supportTickets: Int!
    daysSinceLastLogin: Int!
    orders(first: Int = 10): [Order!]!
    churnRisk: Prediction
  }

  type CustomerConnection {
    edges: [CustomerEdge!]!
    pageInfo: PageInfo!
  }

  type CustomerEdge {
    cursor: String!
    node: Customer!
  }

  type PageInfo {
    hasNextPage: Boolean!
    endCursor: String
  }

  type Order {
    id: ID!
    amount: Float!
    currency: String!
    channel: String!
    createdAt: DateTime!
    itemCount: Int!
    isInternational: Boolean!
    paymentAttempts: Int!
    hourOfDay: Int!
  }

  type Prediction {
    model: String!
    version: String!
    score: Float!
    label: String!
    cached: Boolean!
  }
`;

// ---------------------------------------------------------------- configuration

interface ModelConfig {
  backend: string;
  model: string;
  version?: string;
  thresholds: Record<string, number>;
  features: string[];
}

interface TenantConfig {
  id: string;
  displayName: string;
  data: { strategy: string; schema?: string };
  models: Record<string, ModelConfig>;
}

interface AtriumConfigFile {
  auth: {
    issuer: string;
    audience: string;
    algorithms: string[];
    keys: { kid: string; alg: string; jwk: JWK }[];
  };
  inference: { backends: Record<string, { url: string }> };
  tenants: TenantConfig[];
}

function readConfig(): AtriumConfigFile {
  const path = process.env.PEER_CONFIG;
  if (!path) throw new Error('PEER_CONFIG must name the config file');
  return JSON.parse(readFileSync(path, 'utf8')) as AtriumConfigFile;
}

const config = readConfig();
const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const TENANT_CLAIMS = ['tenant', 'https://atrium.dev/tenant'];
const STATEMENT_TIMEOUT_MS = 5_000;
const POOL_MAX = 10;
const MODEL_CONNECTIONS = 16;

export const port = Number(process.env.PORT ?? 0);

// ---------------------------------------------------------------- errors

/** A failure with the HTTP status and GraphQL error code it stands for. */
export class PeerError extends Error {
  constructor(
    readonly code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'BAD_USER_INPUT',
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------- authentication

export interface Tenant {
  id: string;
  displayName: string;
  schema: string;
  churn: ModelConfig;
}

export interface Principal {
  subject: string;
  scopes: string[];
  tenant: Tenant;
}

/** `tenant_<id>` with `-` → `_` (Atrium's default schema of a `schema` tenant). */
function schemaOf(tenant: TenantConfig): string {
  if (tenant.data.strategy !== 'schema') {
    throw new Error(`tenant ${tenant.id}: the peers serve schema tenants only`);
  }
  const name = tenant.data.schema ?? `tenant_${tenant.id.replaceAll('-', '_')}`;
  if (name.length > 63) throw new Error(`tenant ${tenant.id}: id too long for the peers`);
  return name;
}

const tenants = new Map<string, Tenant>(
  config.tenants.map((t) => {
    const churn = t.models.churn;
    if (!churn) throw new Error(`tenant ${t.id} has no churn model`);
    return [t.id, { id: t.id, displayName: t.displayName, schema: schemaOf(t), churn }];
  }),
);

const jwks = createLocalJWKSet({ keys: config.auth.keys.map((k) => k.jwk) });
const verified = new LRUCache<string, { principal: Principal; expiresAt: number }>({
  max: 10_000,
});

async function verifyToken(token: string): Promise<Principal> {
  const { payload } = await jwtVerify(token, jwks, {
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    algorithms: ['ES256'],
    clockTolerance: 30,
    requiredClaims: ['exp'],
  });
  const claim = TENANT_CLAIMS.map((c) => payload[c]).find((v) => typeof v === 'string');
  if (typeof claim !== 'string' || !TENANT_ID_PATTERN.test(claim)) {
    throw new PeerError('UNAUTHENTICATED', 401, 'The token names no tenant');
  }
  const tenant = tenants.get(claim);
  if (!tenant) throw new PeerError('FORBIDDEN', 403, 'Unknown tenant');
  const scope = typeof payload.scope === 'string' ? payload.scope : '';
  return {
    subject: payload.sub ?? '',
    scopes: scope.split(' ').filter(Boolean),
    tenant,
  };
}

/** The verified principal of an `Authorization` header; throws a 401 PeerError otherwise. */
export async function authenticate(header: string | null | undefined): Promise<Principal> {
  const match = header ? /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header) : null;
  if (!match?.[1]) throw new PeerError('UNAUTHENTICATED', 401, 'A bearer token is required');
  const token = match[1];
  const key = createHash('sha256').update(token).digest('base64url');
  const hit = verified.get(key);
  const now = Date.now();
  if (hit && hit.expiresAt > now) return hit.principal;
  let principal: Principal;
  try {
    principal = await verifyToken(token);
  } catch (error) {
    if (error instanceof PeerError) throw error;
    throw new PeerError('UNAUTHENTICATED', 401, 'Invalid token');
  }
  const exp = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
    exp: number;
  };
  verified.set(key, { principal, expiresAt: exp.exp * 1000 });
  return principal;
}

export function requireScope(principal: Principal, scope: string): void {
  if (!principal.scopes.includes(scope)) {
    throw new PeerError('FORBIDDEN', 403, `This field requires the "${scope}" scope.`);
  }
}

// ---------------------------------------------------------------- data

const database = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: POOL_MAX,
  statement_timeout: STATEMENT_TIMEOUT_MS,
  application_name: 'atrium-peer',
});
database.on('error', () => {
  // An idle connection died (e.g. the counting proxy closed): the pool replaces it.
});

export interface CustomerRow {
  id: string;
  name: string;
  email: string;
  segment: string;
  country: string;
  created_at: Date;
  lifetime_value: number;
  tenure_months: number;
  monthly_spend: number;
  support_tickets: number;
  days_since_last_login: number;
}

export interface OrderRow {
  id: string;
  amount: number;
  currency: string;
  channel: string;
  created_at: Date;
  item_count: number;
  is_international: boolean;
  payment_attempts: number;
  hour_of_day: number;
  customer_id: string;
}

/** A customer as the schema's default resolvers read it (and the churn features are read). */
export interface Customer {
  id: string;
  name: string;
  email: string;
  segment: string;
  country: string;
  createdAt: Date;
  lifetimeValue: number;
  tenureMonths: number;
  monthlySpend: number;
  supportTickets: number;
  daysSinceLastLogin: number;
}

export interface Order {
  id: string;
  amount: number;
  currency: string;
  channel: string;
  createdAt: Date;
  itemCount: number;
  isInternational: boolean;
  paymentAttempts: number;
  hourOfDay: number;
}

const q = (name: string) => pg.escapeIdentifier(name);
const CUSTOMER_COLUMNS =
  't."id", t."name", t."email", t."segment", t."country", t."created_at", ' +
  't."lifetime_value"::float8 AS "lifetime_value", t."tenure_months", ' +
  't."monthly_spend"::float8 AS "monthly_spend", t."support_tickets", t."days_since_last_login"';
const ORDER_COLUMNS =
  't."id", t."amount"::float8 AS "amount", t."currency", t."channel", t."created_at", ' +
  't."item_count", t."is_international", t."payment_attempts", t."hour_of_day", t."customer_id"';

function toCustomer(row: CustomerRow): Customer {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    segment: row.segment,
    country: row.country,
    createdAt: row.created_at,
    lifetimeValue: row.lifetime_value,
    tenureMonths: row.tenure_months,
    monthlySpend: row.monthly_spend,
    supportTickets: row.support_tickets,
    daysSinceLastLogin: row.days_since_last_login,
  };
}

function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    amount: row.amount,
    currency: row.currency,
    channel: row.channel,
    createdAt: row.created_at,
    itemCount: row.item_count,
    isInternational: row.is_international,
    paymentAttempts: row.payment_attempts,
    hourOfDay: row.hour_of_day,
  };
}

const CURSOR_PREFIX = 'c1:';
export const encodeCursor = (id: string) =>
  Buffer.from(CURSOR_PREFIX + id, 'utf8').toString('base64url');

function decodeCursor(cursor: string | null | undefined): string | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(CURSOR_PREFIX) || text.length === CURSOR_PREFIX.length) {
    throw new PeerError('BAD_USER_INPUT', 400, 'Invalid cursor "after".');
  }
  return text.slice(CURSOR_PREFIX.length);
}

const MAX_PAGE = 200;
const MAX_ORDERS = 50;

function pageSize(value: unknown, max: number, name = 'first'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new PeerError(
      'BAD_USER_INPUT',
      400,
      `"${name}" must be between 1 and ${max}; got ${String(value)}.`,
    );
  }
  return value;
}

export interface CustomerPage {
  edges: { cursor: string; node: Customer }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** `customers(first, after)`: one keyset statement, `first + 1` rows to learn about more. */
export async function customersPage(
  tenant: Tenant,
  args: { first?: number | null; after?: string | null },
): Promise<CustomerPage> {
  const first = pageSize(args.first ?? 20, MAX_PAGE);
  const after = decodeCursor(args.after);
  const params: unknown[] = [];
  let where = '';
  if (after !== undefined) {
    params.push(after);
    where = `WHERE t."id" > $1`;
  }
  params.push(first + 1);
  const { rows } = await database.query<CustomerRow>(
    `SELECT ${CUSTOMER_COLUMNS} FROM ${q(tenant.schema)}."customers" t
    ${where} ORDER BY t."id" LIMIT $${params.length}`,
    params,
  );
  const nodes = rows.slice(0, first).map(toCustomer);
  const last = nodes.at(-1);
  return {
    edges: nodes.map((node) => ({ cursor: encodeCursor(node.id), node })),
    pageInfo: { hasNextPage: rows.length > first, endCursor: last ? encodeCursor(last.id) : null },
  };
}

/** Customers by id, one statement for the batch; `null` for an id the tenant lacks. */
export async function customersByIds(
  tenant: Tenant,
  ids: readonly string[],
): Promise<(Customer | null)[]> {
  const distinct = [...new Set(ids)];
  const { rows } = await database.query<CustomerRow>(
    `SELECT ${CUSTOMER_COLUMNS} FROM ${q(tenant.schema)}."customers" t WHERE t."id" = ANY($1)`,
    [distinct],
  );
  const byId = new Map(rows.map((row) => [row.id, toCustomer(row)]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** The newest `first` orders of every customer of the batch, one statement. */
export async function ordersByCustomers(
  tenant: Tenant,
  customerIds: readonly string[],
  first: number | null | undefined,
): Promise<Order[][]> {
  const limit = pageSize(first ?? 10, MAX_ORDERS);
  const { rows } = await database.query<OrderRow>(
    `SELECT * FROM (
      SELECT ${ORDER_COLUMNS}, row_number() OVER (PARTITION BY t."customer_id" ORDER BY t."created_at" DESC, t."id") AS atrium_rank
      FROM ${q(tenant.schema)}."orders" t WHERE t."customer_id" = ANY($1)
    ) ranked WHERE atrium_rank <= $2 ORDER BY atrium_rank`,
    [[...new Set(customerIds)], limit],
  );
  const grouped = new Map<string, Order[]>();
  for (const row of rows) {
    const list = grouped.get(row.customer_id);
    if (list) list.push(toOrder(row));
    else grouped.set(row.customer_id, [toOrder(row)]);
  }
  return customerIds.map((id) => grouped.get(id) ?? []);
}

// ---------------------------------------------------------------- predictions

export interface Prediction {
  model: string;
  version: string;
  score: number;
  label: string;
  cached: boolean;
}

const modelServers = new Map<string, HttpPool>();
function modelServer(backend: string): { pool: HttpPool; prefix: string } {
  const url = config.inference.backends[backend]?.url;
  if (!url) throw new Error(`no inference backend ${backend}`);
  const parsed = new URL(url);
  let pool = modelServers.get(parsed.origin);
  if (!pool) {
    pool = new HttpPool(parsed.origin, { connections: MODEL_CONNECTIONS });
    modelServers.set(parsed.origin, pool);
  }
  return { pool, prefix: parsed.pathname.replace(/\/+$/, '') };
}

/** The churn model's input row of a customer: the configured features, in order. */
export function churnFeatures(tenant: Tenant, customer: Customer): number[] {
  return tenant.churn.features.map((feature) => {
    const value = (customer as unknown as Record<string, unknown>)[feature];
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (typeof value === 'number' && Number.isFinite(value)) return value;
    throw new Error(`feature ${feature} is not a number`);
  });
}

function labelFor(thresholds: Readonly<Record<string, number>>, score: number): string {
  let best: [string, number] | undefined;
  for (const [label, min] of Object.entries(thresholds)) {
    if (min <= score && (best === undefined || min > best[1])) best = [label, min];
  }
  return best?.[0] ?? 'unknown';
}

interface InferResponse {
  model_version?: string;
  outputs?: { name: string; shape: number[]; data: number[] | number[][] }[];
}

/** One infer call for every row of the batch. */
export async function churnScores(
  tenant: Tenant,
  rows: readonly (readonly number[])[],
): Promise<Prediction[]> {
  const model = tenant.churn;
  const { pool, prefix } = modelServer(model.backend);
  const version =
    model.version === undefined ? '' : `/versions/${encodeURIComponent(model.version)}`;
  const width = model.features.length;
  const data = new Array<number>(rows.length * width);
  rows.forEach((row, r) => row.forEach((v, f) => (data[r * width + f] = v)));
  const answer = await pool.request({
    method: 'POST',
    path: `${prefix}/v2/models/${encodeURIComponent(model.model)}${version}/infer`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'features', shape: [rows.length, width], datatype: 'FP32', data }],
      outputs: [{ name: 'probability' }],
    }),
  });
  const json = (await answer.body.json()) as InferResponse;
  if (answer.statusCode !== 200) throw new Error(`infer: HTTP ${answer.statusCode}`);
  const output = json.outputs?.find((o) => o.name === 'probability');
  const scores = (output?.data ?? []).flat();
  if (scores.length !== rows.length) throw new Error('infer: wrong number of scores');
  const modelVersion = String(json.model_version ?? model.version ?? '');
  return scores.map((score) => ({
    model: 'churn',
    version: modelVersion,
    score,
    label: labelFor(model.thresholds, score),
    cached: false,
  }));
}

// ---------------------------------------------------------------- per-request DataLoaders

export interface RequestLoaders {
  customer: DataLoader<string, Customer | null>;
  /** One loader per `first`: all customers' orders of the same size share a statement. */
  orders(first: number | null | undefined): DataLoader<string, Order[]>;
  churn: DataLoader<readonly number[], Prediction, string>;
}

/** The DataLoaders of one request (what Apollo's and Yoga's `context` functions build). */
export function createRequestLoaders(tenant: Tenant): RequestLoaders {
  const orders = new Map<number, DataLoader<string, Order[]>>();
  return {
    customer: new DataLoader((ids) => customersByIds(tenant, ids)),
    orders(first) {
      const limit = first ?? 10;
      let loader = orders.get(limit);
      if (!loader) {
        loader = new DataLoader((ids) => ordersByCustomers(tenant, ids, limit));
        orders.set(limit, loader);
      }
      return loader;
    },
    churn: new DataLoader((rows) => churnScores(tenant, rows), {
      cacheKeyFn: (row) => row.join(','),
    }),
  };
}

/** `DateTime` values: ISO 8601 in UTC, as Atrium serialises them. */
export function serializeDateTime(value: unknown): string {
  const date = value instanceof Date ? value : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new TypeError('DateTime cannot represent this value.');
  return date.toISOString();
}

/** `DateTime`, as every peer's resolver map has it. */
export const DateTime = new GraphQLScalarType({ name: 'DateTime', serialize: serializeDateTime });

/** The context of a resolver in a server that builds DataLoaders per request (Apollo, Yoga). */
export interface LoaderContext {
  principal: Principal;
  loaders: RequestLoaders;
}

/**
 * The resolver map of the servers whose docs teach per-request DataLoaders in the context
 * (Apollo Server, graphql-yoga): every list of customers' orders or scores is one batch.
 */
export const loaderResolvers = {
  DateTime,
  Query: {
    viewer: (_parent: unknown, _args: unknown, { principal }: LoaderContext) => principal,
    customer: (_parent: unknown, { id }: { id: string }, { principal, loaders }: LoaderContext) => {
      requireScope(principal, 'read');
      return loaders.customer.load(id);
    },
    customers: (
      _parent: unknown,
      args: { first?: number | null; after?: string | null },
      { principal }: LoaderContext,
    ) => {
      requireScope(principal, 'read');
      return customersPage(principal.tenant, args);
    },
  },
  Customer: {
    orders: (
      customer: Customer,
      { first }: { first?: number | null },
      { loaders }: LoaderContext,
    ) => loaders.orders(first).load(customer.id),
    churnRisk: (customer: Customer, _args: unknown, { principal, loaders }: LoaderContext) =>
      loaders.churn.load(churnFeatures(principal.tenant, customer)),
  },
};

/** Ends the pools (on SIGTERM). */
export async function closeBackends(): Promise<void> {
  await Promise.all([database.end(), ...[...modelServers.values()].map((p) => p.close())]);
}

/** The line the scenario waits for. */
export function announce(url: string): void {
  console.log(`listening ${url}`);
}
