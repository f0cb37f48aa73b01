/**
 * Peer of scenario 7 (tenant services): `Customer.tickets` as Apollo's docs teach it. Apollo
 * Server 5 `startStandaloneServer`; a `TicketsAPI extends RESTDataSource` (@apollo/datasource-rest)
 * created per request in `context`, sharing the server's cache; `willSendRequest` adds the
 * caller's identity; the `Customer.tickets` resolver calls `dataSources.tickets.getTickets(id)`,
 * one `GET /customers/{id}/tickets` per customer (the docs' one-call-per-field pattern; the data
 * source deduplicates identical GETs within a request, as its default policy does).
 *
 * What is not the HTTP source is kept as cheap as Atrium's, so the comparison isolates it:
 * - customers: a fixed list of ids read once at start from the bench database (the tenant's
 *   schema, ordered by id like Atrium's `customers` connection), sliced per query;
 * - the caller's token: ES256, verified with jose (pinned algorithm, issuer, audience, expiry)
 *   and then cached until it expires, as Atrium's verified-token cache does;
 * - the identity sent upstream: the same kind of token Atrium signs (ES256, kid = JWK
 *   thumbprint, claims tenant/sub/scope/aud/iss/iat/exp, lifetime `PEER_IDENTITY_TTL_SECONDS`),
 *   reused while at least half its lifetime is left, as src/auth/identity.ts does.
 *
 * Configured by environment variables (the bench sets them): PEER_TICKETS_URL, PEER_DATABASE_URL,
 * PEER_SCHEMA, PEER_TENANT, PEER_CUSTOMERS (how many ids to load), PEER_SIGNING_KEY (private JWK,
 * JSON), PEER_IDENTITY_ISSUER, PEER_IDENTITY_AUDIENCE, PEER_IDENTITY_TTL_SECONDS,
 * PEER_AUTH_JWK (the callers' public JWK, JSON), PEER_AUTH_ISSUER, PEER_AUTH_AUDIENCE.
 * Prints `listening <url>` when ready.
 */
import {
  type AugmentedRequest,
  type DataSourceConfig,
  RESTDataSource,
} from '@apollo/datasource-rest';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { GraphQLError } from 'graphql';
import { calculateJwkThumbprint, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import pg from 'pg';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new TypeError(`${name} must be set`);
  return value;
}

const TICKETS_URL = env('PEER_TICKETS_URL');
const TENANT = env('PEER_TENANT');
const CUSTOMERS = Number(env('PEER_CUSTOMERS'));
const IDENTITY_ISSUER = env('PEER_IDENTITY_ISSUER');
const IDENTITY_AUDIENCE = env('PEER_IDENTITY_AUDIENCE');
const IDENTITY_TTL_SECONDS = Number(env('PEER_IDENTITY_TTL_SECONDS'));
const AUTH_ISSUER = env('PEER_AUTH_ISSUER');
const AUTH_AUDIENCE = env('PEER_AUTH_AUDIENCE');
const ALG = 'ES256';

/** The customer ids, in the order of Atrium's `customers` connection. */
async function loadCustomerIds(): Promise<string[]> {
  const client = new pg.Client({
    connectionString: env('PEER_DATABASE_URL'),
    application_name: 'atrium-bench-peer',
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `SELECT id FROM ${pg.escapeIdentifier(env('PEER_SCHEMA'))}.customers ORDER BY id LIMIT $1`,
      [CUSTOMERS],
    );
    return rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

interface Caller {
  tenant: string;
  sub: string;
  scope: string;
  exp: number;
}

const callerKey = await importJWK(JSON.parse(env('PEER_AUTH_JWK')) as JWK, ALG);
const verified = new Map<string, Caller>();

async function verifyCaller(authorization: string | undefined): Promise<Caller> {
  const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
  if (!token) {
    throw new GraphQLError('missing bearer token', {
      extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
    });
  }
  const now = Math.floor(Date.now() / 1000);
  const hit = verified.get(token);
  if (hit && hit.exp > now) return hit;
  try {
    const { payload } = await jwtVerify(token, callerKey, {
      algorithms: [ALG],
      issuer: AUTH_ISSUER,
      audience: AUTH_AUDIENCE,
      requiredClaims: ['exp', 'sub'],
    });
    const caller: Caller = {
      tenant: String(payload.tenant),
      sub: String(payload.sub),
      scope: typeof payload.scope === 'string' ? payload.scope : '',
      exp: payload.exp ?? now,
    };
    if (verified.size >= 10_000) verified.clear();
    verified.set(token, caller);
    return caller;
  } catch (error) {
    throw new GraphQLError(`token refused: ${(error as Error).message}`, {
      extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } },
    });
  }
}

const signingJwk = JSON.parse(env('PEER_SIGNING_KEY')) as JWK;
const { d: _d, ...publicJwk } = signingJwk;
const signingKid = await calculateJwkThumbprint(publicJwk);
const signingKey = await importJWK(signingJwk, ALG);
const identities = new Map<string, { token: string; expiresAt: number }>();

/** A short-lived identity for the tickets service, reused while half its lifetime is left. */
async function identityFor(caller: Caller): Promise<string> {
  const key = `${caller.tenant}\u0000${caller.sub}\u0000${caller.scope}`;
  const at = Math.floor(Date.now() / 1000);
  const cached = identities.get(key);
  if (cached && cached.expiresAt - at >= IDENTITY_TTL_SECONDS / 2) return cached.token;
  const token = await new SignJWT({ tenant: caller.tenant, scope: caller.scope })
    .setProtectedHeader({ alg: ALG, kid: signingKid, typ: 'JWT' })
    .setIssuer(IDENTITY_ISSUER)
    .setSubject(caller.sub)
    .setAudience(IDENTITY_AUDIENCE)
    .setIssuedAt(at)
    .setExpirationTime(at + IDENTITY_TTL_SECONDS)
    .sign(signingKey);
  identities.set(key, { token, expiresAt: at + IDENTITY_TTL_SECONDS });
  return token;
}

interface Ticket {
  id: string;
  customerId: string;
  subject: string;
  status: string;
  priority: string;
  openedAt: string;
}

class TicketsAPI extends RESTDataSource {
  override baseURL = `${TICKETS_URL}/`;
  private readonly caller: Caller;

  constructor(options: DataSourceConfig & { caller: Caller }) {
    super(options);
    this.caller = options.caller;
  }

  override async willSendRequest(_path: string, request: AugmentedRequest): Promise<void> {
    request.headers.authorization = `Bearer ${await identityFor(this.caller)}`;
  }

  async getTickets(customerId: string, status?: string): Promise<Ticket[]> {
    const answer = await this.get<{ items: Ticket[] }>(
      `customers/${encodeURIComponent(customerId)}/tickets`,
      status ? { params: { status } } : {},
    );
    return answer.items;
  }
}

interface PeerContext {
  caller: Caller;
  dataSources: { tickets: TicketsAPI };
}

const typeDefs = `#graphql
  type Query {
    customers(first: Int = 20): CustomerConnection!
  }
  type CustomerConnection {
    edges: [CustomerEdge!]!
  }
  type CustomerEdge {
    node: Customer!
  }
  type Customer {
    id: ID!
    tickets(status: TicketStatus): [Ticket!]!
  }
  type Ticket {
    id: ID!
    subject: String!
    status: TicketStatus!
    priority: TicketPriority!
    openedAt: String!
  }
  enum TicketStatus { OPEN PENDING SOLVED }
  enum TicketPriority { LOW NORMAL HIGH URGENT }
`;

const customerIds = await loadCustomerIds();

const server = new ApolloServer<PeerContext>({
  typeDefs,
  resolvers: {
    Query: {
      customers: (_parent: unknown, args: { first: number }) => ({
        edges: customerIds.slice(0, Math.max(0, args.first)).map((id) => ({ node: { id } })),
      }),
    },
    Customer: {
      tickets: (
        customer: { id: string },
        args: { status?: string | null },
        { dataSources }: PeerContext,
      ) => dataSources.tickets.getTickets(customer.id, args.status ?? undefined),
    },
  },
});

const { url } = await startStandaloneServer(server, {
  listen: { port: Number(process.env.PORT ?? 0), host: '127.0.0.1' },
  context: async ({ req }) => {
    const caller = await verifyCaller(req.headers.authorization);
    if (caller.tenant !== TENANT) {
      throw new GraphQLError(`this peer serves tenant ${TENANT} only`, {
        extensions: { code: 'FORBIDDEN', http: { status: 403 } },
      });
    }
    const { cache } = server;
    return { caller, dataSources: { tickets: new TicketsAPI({ cache, caller }) } };
  },
});
console.log(`listening ${url} (${customerIds.length} customers of ${TENANT})`);
process.on('SIGTERM', () => {
  server.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
