import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FairPoolEvent } from '../../../src/backends/data/fair-pool.js';
import type { DataSource } from '../../../src/backends/data/types.js';
import { eventually } from '../../support/eventually.js';
import { startTestGateway, type GraphQLAnswer, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { TEST_DB_URL } from '../data/support.js';
import { createPostgresFixture, type PostgresFixture } from './postgres-fixture.js';

// Issue 12 §4 "shared database pool": one tenant's slow statements held the whole shared pool
// (a locked acme table made a simple globex query wait 4.5 s). Each tenant now holds at most
// its share of the shared pool and waiting tenants are served in turn. Real PostgreSQL: an
// admin connection locks tenant A's table, A's requests pile up behind the lock, and tenant B's
// query still gets a connection — seen in the pool's events, while A's were waiting.

const POOL = 4;
const SHARE = 2;
const A_REQUESTS = 6;
const LIST = '{ customers(first: 3) { edges { node { id name } } } }';
/**
 * Tenant A's i-th request: a page of its own size, so no two share a statement (concurrent
 * requests asking the same page while it waits for a session would share one).
 */
const listOf = (i: number) => `{ customers(first: ${i + 1}) { edges { node { id name } } } }`;

let fixture: PostgresFixture;
let gateway: TestGateway;
let lock: pg.Client | undefined;
let probe: pg.Client | undefined;
const events: FairPoolEvent[] = [];
const tokens = { a: '', b: '' };
/** Statements that reached the data source, per tenant. */
const entered = new Map<string, number>();
/** Statements other than `Query.customers` once warm (none: the count above is of LIST's). */
const built: string[] = [];

beforeAll(async () => {
  fixture = await createPostgresFixture({
    poolMax: POOL,
    tenantShareMax: SHARE,
    // Longer than the test: A's statements end when the lock goes, not by timing out.
    statementTimeoutMs: 20_000,
    seed: { size: 10 },
    onSharedPoolEvent: (event) => events.push(event),
  });
  const source = fixture.dataSource;
  // The data source builds a statement once it holds a session, so a request that reached it
  // is counted on the way in; each LIST request makes one statement, `Query.customers`.
  const counted: DataSource = Object.assign(Object.create(source) as DataSource, {
    query: ((tenant, build) => {
      entered.set(tenant.id, (entered.get(tenant.id) ?? 0) + 1);
      return source.query(tenant, (target) => {
        const statement = build(target);
        if (statement.operation !== 'Query.customers') built.push(statement.operation);
        return statement;
      });
    }) satisfies DataSource['query'],
  });
  const signer = await createTestSigner();
  const { schema: a, row: b } = fixture.tenants;
  gateway = await startTestGateway({
    signer,
    dataSource: counted,
    requestDeadlineMs: 25_000,
    tenants: [
      { ...a, plan: 'pro' },
      { ...b, plan: 'pro' },
    ],
  });
  tokens.a = await signer.sign({ tenant: a.id }, { expiresIn: '1h' });
  tokens.b = await signer.sign({ tenant: b.id }, { expiresIn: '1h' });
}, 120_000);

afterAll(async () => {
  await lock?.query('ROLLBACK').catch(() => undefined);
  await lock?.end();
  await probe?.end();
  await gateway?.stop();
  await fixture?.cleanup();
});

describe('the shared pool: a tenant holds at most its share', () => {
  it('answers tenant B while tenant A’s statements wait on a locked table', async () => {
    const a = fixture.tenants.schema.id;
    const b = fixture.tenants.row.id;
    // Warm: what a tenant's first request reads once (its catalog) is behind it.
    for (const token of [tokens.a, tokens.b]) {
      expect((await gateway.query(LIST, { token })).body.errors).toBeUndefined();
    }
    entered.clear();
    built.length = 0;
    lock = new pg.Client({ connectionString: TEST_DB_URL });
    await lock.connect();
    const lockPid = (await lock.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
      .pid;
    await lock.query('BEGIN');
    await lock.query(`LOCK TABLE tenant_sch_${fixture.run}.customers IN ACCESS EXCLUSIVE MODE`);
    // Its own connection, outside any transaction (a transaction would see one snapshot).
    probe = new pg.Client({ connectionString: TEST_DB_URL });
    await probe.connect();
    const blocked = async () =>
      Number(
        (
          await probe!.query<{ n: string }>(
            'SELECT count(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))',
            [lockPid],
          )
        ).rows[0]?.n,
      );

    const since = events.length;
    const pendingA: Promise<GraphQLAnswer>[] = [];
    for (let i = 0; i < A_REQUESTS; i++)
      pendingA.push(gateway.query(listOf(i), { token: tokens.a }));
    // Every A request has reached the data source, and A's statements are stuck on the lock.
    await eventually(() => expect(entered.get(a)).toBe(A_REQUESTS), 5_000);
    await eventually(async () => expect(await blocked()).toBeGreaterThanOrEqual(SHARE), 5_000);

    // B is answered while the lock still holds (A's requests all pending).
    let settledA = 0;
    for (const p of pendingA) void p.then(() => (settledA += 1));
    const answerB = await gateway.query(LIST, { token: tokens.b });
    expect(answerB.status).toBe(200);
    expect(answerB.body.errors).toBeUndefined();
    expect(settledA).toBe(0);
    expect(await blocked()).toBe(SHARE);

    // The pool's own account: A never held more than its share; B got its connection while
    // A's other acquisitions were queued.
    const seen = events.slice(since);
    const ofA = seen.filter((e) => e.tenantId === a);
    expect(Math.max(...ofA.map((e) => e.held))).toBe(SHARE);
    expect(ofA.filter((e) => e.type === 'queued')).toHaveLength(A_REQUESTS - SHARE);
    const bGot = seen.find((e) => e.tenantId === b && e.type === 'acquired');
    expect(bGot?.waitingTotal).toBe(A_REQUESTS - SHARE);

    await lock.query('COMMIT');
    const answersA = await Promise.all(pendingA);
    expect(answersA.map((r) => r.status)).toEqual(Array(A_REQUESTS).fill(200));
    expect(answersA.every((r) => r.body.errors === undefined)).toBe(true);
    expect(built).toEqual([]);
  });
});
